-- A conversation's preview is that of its newest message (by sent_at, then stream order)
-- that is neither deleted nor an erased person's, or none: preview_at and preview_seq name
-- that message (its sent_at and stream_seq), so a newer message replaces it and a deletion
-- or an erasure of it falls back to the one before (projector.PREVIEW_SQL). Existing
-- conversations are set by the same rule, which also takes a deleted message's text out of
-- the previews that still show it.
ALTER TABLE conversations ADD COLUMN IF NOT EXISTS preview_at timestamptz;
ALTER TABLE conversations ADD COLUMN IF NOT EXISTS preview_seq bigint;
UPDATE conversations c SET last_preview = n.preview, preview_at = n.sent_at,
    preview_seq = n.stream_seq
FROM conversations c2 LEFT JOIN LATERAL (
    SELECT left(CASE WHEN m.kind = 'callback' AND m.direction = 'in'
                     THEN '[button: ' || coalesce(m.text, '') || ']'
                     ELSE coalesce(nullif(m.text, ''), '[' || m.kind || ']') END, 200) AS preview,
           m.sent_at, m.stream_seq
    FROM messages m
    WHERE m.conversation_id = c2.id AND m.deleted_at IS NULL
      AND m.content <> '{"kind": "erased"}'::jsonb
    ORDER BY m.sent_at DESC, m.stream_seq DESC LIMIT 1
) n ON true
WHERE c.id = c2.id;
