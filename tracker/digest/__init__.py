"""Weekly email digests of registry changes, one per subscription.

build.py   pure: change events + trial rows → DigestContent (sections, counts, "and K more")
render.py  Jinja templates (HTML with inline CSS, plain text) → a multipart/alternative message
send.py    SmtpSender (SSL / STARTTLS / login), EmlWriter (dry run to files), TextPrinter (preview)
run.py     run_digests: periods, the sent ledger, one failure never stopping the others
"""
