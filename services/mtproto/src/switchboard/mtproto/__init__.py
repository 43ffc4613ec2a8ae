"""MTProto gateway: Telethon user sessions, single ownership by lease, backfill, live updates."""
