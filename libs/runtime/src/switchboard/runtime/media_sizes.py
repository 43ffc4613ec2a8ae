"""Media size limits a provider publishes once for both directions, so that every service
that uploads (outbound) or downloads (crm) a provider's media checks the same numbers.

WhatsApp Cloud API, per media type (Meta's "Supported media types"): image 5 MB, audio,
voice, video and animation 16 MB, sticker 500 KB, document 100 MB, for sending and for
fetching alike.
"""

from __future__ import annotations

KB = 1024
MB = 1024 * KB
WHATSAPP_MEDIA = {
    "photo": 5 * MB,
    "video": 16 * MB,
    "animation": 16 * MB,
    "audio": 16 * MB,
    "voice": 16 * MB,
    "document": 100 * MB,
    "sticker": 500 * KB,
}
