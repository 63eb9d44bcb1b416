"""GDPR work: data-subject requests as records (``requests``); export, erasure, retention
and reports build on them."""
