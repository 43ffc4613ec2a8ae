-- Where a lead came from (issue 19): the ad or deep link of the contact's first message.
-- click_id is WhatsApp's ctwa_clid, which a business_messaging conversion reports back.
ALTER TABLE leads ADD COLUMN IF NOT EXISTS referral_source text;
ALTER TABLE leads ADD COLUMN IF NOT EXISTS referral_campaign text;
ALTER TABLE leads ADD COLUMN IF NOT EXISTS click_id text;
