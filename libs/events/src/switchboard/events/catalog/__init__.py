"""The catalog: importing this package registers every (name, version)."""

from switchboard.events.catalog import conv, crm, delivery, flows, mtproto, outbound

__all__ = ["conv", "crm", "delivery", "flows", "mtproto", "outbound"]
