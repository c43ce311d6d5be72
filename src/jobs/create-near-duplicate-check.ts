/**
 * Builds the `near-duplicate-check` job and its drain
 * (src/jobs/near-duplicate-check-job.ts). The server passes its own
 * quarantine service; `mxcd jobs` builds one the same way, whose feed
 * wake-ups and cache invalidations reach running servers through the
 * notification bus.
 */
import { MediaChanges } from "../cache/media-changes.js";
import type { Config } from "../config/config-schema.js";
import type { Database } from "../db/database.js";
import type { NotificationBus } from "../db/notification-bus.js";
import type { Logger } from "../logging/logger.js";
import { NearDuplicateQuarantine, searchFinder } from "../media/near-duplicate-quarantine.js";
import { PdqSearchService } from "../media/pdq-search-service.js";
import { FeedSignal } from "../media/quarantine-feed-service.js";
import { QuarantineService } from "../media/quarantine-service.js";
import { PdqHashLogRepository } from "../repositories/pdq-hash-log-repository.js";
import { QuarantinePropagationRepository } from "../repositories/quarantine-propagation-repository.js";
import {
  QuarantineCandidates,
  QuarantineRepository,
} from "../repositories/quarantine-repository.js";
import { NearDuplicateCheckDrain, NearDuplicateCheckJob } from "./near-duplicate-check-job.js";

/** The job (for the runner) and its drain (for whoever records a hash). */
export interface NearDuplicateCheck {
  readonly job: NearDuplicateCheckJob;
  readonly drain: NearDuplicateCheckDrain;
}

/** Over the process's own quarantine service and near-duplicate rule. */
export function createNearDuplicateCheck(deps: {
  readonly database: Database;
  readonly near: NearDuplicateQuarantine;
  readonly quarantine: QuarantineService;
  readonly logger: Pick<Logger, "info">;
}): NearDuplicateCheck {
  const job = new NearDuplicateCheckJob({
    database: deps.database,
    near: deps.near,
    quarantine: deps.quarantine,
    log: new QuarantinePropagationRepository(),
    logger: deps.logger,
  });
  return { job, drain: new NearDuplicateCheckDrain(deps.database, job) };
}

/** For a process without a server (`mxcd jobs`): the quarantine service built as the server's. */
export function createDetachedNearDuplicateCheck(
  config: Config,
  deps: { readonly database: Database; readonly bus: NotificationBus; readonly logger: Logger },
): NearDuplicateCheck {
  const rows = new QuarantineRepository();
  const near = new NearDuplicateQuarantine(
    config.quarantine_similar.pdq_max_distance,
    searchFinder(new PdqSearchService(new PdqHashLogRepository(deps.database), config.server_name)),
    new QuarantinePropagationRepository(),
    rows,
  );
  const quarantine = new QuarantineService(
    config.server_name,
    deps.database,
    rows,
    new QuarantineCandidates(),
    new MediaChanges(deps.bus),
    new FeedSignal(deps.bus),
    Date.now,
    near,
  );
  return createNearDuplicateCheck({ ...deps, near, quarantine });
}
