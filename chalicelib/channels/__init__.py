"""Sending adapters: SES email, SNS SMS, webhooks, template rendering and signed links.

Everything that leaves the system goes through here. Senders never raise for a failed send: they
return a `SendOutcome` whose status says whether the message may have gone out (see `outcome`).
"""
