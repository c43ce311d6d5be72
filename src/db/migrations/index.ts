/** Every schema migration, in order. Append only. */
import * as accounts from "./0001-accounts.js";
import * as media from "./0002-media.js";
import * as rooms from "./0003-rooms.js";
import * as quarantine from "./0004-quarantine.js";
import * as jobs from "./0005-jobs.js";
import * as appService from "./0006-app-service.js";
import * as roomHistoryBackfill from "./0007-room-history-backfill.js";
import * as urlPreviewCache from "./0008-url-preview-cache.js";
import * as urlPreviewExpiry from "./0009-url-preview-expiry.js";
import * as mediaHashes from "./0010-media-hashes.js";
import * as pdqHashLog from "./0011-pdq-hash-log.js";
import * as quarantinePropagations from "./0012-quarantine-propagations.js";
import * as uploadQuota from "./0013-upload-quota.js";
import * as rateLimitBuckets from "./0014-rate-limit-buckets.js";
import * as mediaListing from "./0015-media-listing.js";
import * as uploadQuotaFunction from "./0016-upload-quota-function.js";
import * as mediaListingFilters from "./0017-media-listing-filters.js";
import * as mediaBlurPreviews from "./0018-media-blur-previews.js";
import * as uploadTotals from "./0019-upload-totals.js";
import type { SchemaMigration } from "./migration.js";

export const MIGRATIONS: readonly SchemaMigration[] = [
  { name: "0001-accounts", up: accounts.up },
  { name: "0002-media", up: media.up },
  { name: "0003-rooms", up: rooms.up },
  { name: "0004-quarantine", up: quarantine.up },
  { name: "0005-jobs", up: jobs.up },
  { name: "0006-app-service", up: appService.up },
  { name: "0007-room-history-backfill", up: roomHistoryBackfill.up },
  { name: "0008-url-preview-cache", up: urlPreviewCache.up },
  { name: "0009-url-preview-expiry", up: urlPreviewExpiry.up },
  { name: "0010-media-hashes", up: mediaHashes.up },
  { name: "0011-pdq-hash-log", up: pdqHashLog.up },
  { name: "0012-quarantine-propagations", up: quarantinePropagations.up },
  { name: "0013-upload-quota", up: uploadQuota.up },
  { name: "0014-rate-limit-buckets", up: rateLimitBuckets.up },
  { name: "0015-media-listing", up: mediaListing.up },
  { name: "0016-upload-quota-function", up: uploadQuotaFunction.up },
  { name: "0017-media-listing-filters", up: mediaListingFilters.up },
  { name: "0018-media-blur-previews", up: mediaBlurPreviews.up },
  { name: "0019-upload-totals", up: uploadTotals.up },
];
