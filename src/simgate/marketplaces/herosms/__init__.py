"""HeroSMS: the agent protocol with HeroSMS's push URL, names and ping (spec/herosms.md)."""
