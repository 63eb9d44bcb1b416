"""Time-driven work: work calendars and business-time arithmetic (``business_time``), loading
calendars from the database (``calendars``), absences (``absences``); SLA policies and
escalation build on these."""
