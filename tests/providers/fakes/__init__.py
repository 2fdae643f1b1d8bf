"""Local HTTP servers that implement the documented API shape and behaviour of vendors with
no local counterpart (Persona, Jumio, Twilio), including their errors. Test infrastructure:
the real adapters talk HTTP to them; nothing of ours is replaced."""
