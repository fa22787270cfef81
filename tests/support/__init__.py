"""What the tests share: stand-ins, runners, relays and builders, written once (no tests, no fixtures)."""
