-- The click-to-WhatsApp ad click (ctwa_clid) a lead came from (issue 19): its conversion is
-- a business_messaging CAPI event attributed to that click.
ALTER TABLE leads ADD COLUMN IF NOT EXISTS click_id text;
