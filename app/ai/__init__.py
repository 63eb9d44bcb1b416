"""AI triage: category, priority and team suggestions from a model the company controls.

``interface`` is the contract every classifier keeps (the company's own OpenAI-compatible
endpoint and the embedded model trained on the desk's history); the job layer only ever
talks to that contract, so either can stand in for the other or act as its fallback.
"""
