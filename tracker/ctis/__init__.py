"""The EU Clinical Trials Information System (CTIS): its public API client and record parser."""
