/**
 * The application-service intake (attached-mode.md §3.2, §8.3 item 4): the
 * homeserver pushes every room event to `PUT /_matrix/app/v1/transactions/
 * {txnId}`, and each one goes through the same media-reference extraction as
 * a standalone event, so room media listing, room quarantine, `keep_profiles`
 * and media_redaction_policy work in the attached shape.
 *
 * Design:
 * - Authentication is the registration's `hs_token`, compared in constant
 *   time over SHA-256 digests (equal lengths whatever the input).
 * - One database transaction per pushed transaction: the transaction id row
 *   (a replay finds it and does nothing), each event's row and its
 *   references, and each redaction's removals (room-event-indexer.ts, the
 *   path the room-history backfill shares). The caller answers `{}` only
 *   once this has committed, so the homeserver never drops a transaction
 *   mxcd did not store.
 * - Positions: pushed events have no stream ordering mxcd can use, so each
 *   recorded event gets a local position in arrival order (per room the
 *   homeserver pushes in stream order, which is all the listing needs).
 * - A pushed `m.room.create` marks its room's history complete (every later
 *   event of the room is pushed too), so the room media merge stops asking
 *   the homeserver about rooms created after the application service.
 * - media_redaction_policy runs after the commit, as for standalone
 *   redactions; it never throws.
 */
import { createHash, timingSafeEqual } from "node:crypto";
import type { Database } from "../db/database.js";
import { MatrixError } from "../domain/matrix-error.js";
import type { Logger } from "../logging/logger.js";
import type {
  AppServiceEventRepository,
  AppServiceEventRow,
} from "../repositories/app-service-event-repository.js";
import type { MediaReferenceRepository } from "../repositories/media-reference-repository.js";
import type { RoomHistoryBackfillRepository } from "../repositories/room-history-backfill-repository.js";
import type { RedactionFacts } from "../rooms/media-redaction-policy.js";
import { type PushedEvent, parsePushedEvent, transactionEvents } from "./app-service-events.js";
import { RoomEventIndexer } from "./room-event-indexer.js";

/** The slice of MediaRedactionPolicy the receiver calls. */
export interface RedactionPolicy {
  apply(redaction: RedactionFacts): Promise<unknown>;
}

/** What the receiver needs; all required. */
export interface AppServiceReceiverDeps {
  /** The registration's `id` (the namespace of its transaction ids). */
  readonly asId: string;
  /** The registration's `hs_token`. */
  readonly hsToken: string;
  readonly database: Database;
  readonly events: AppServiceEventRepository;
  readonly references: Pick<MediaReferenceRepository, "insertForEvent">;
  readonly redactionPolicy: RedactionPolicy;
  readonly logger: Logger;
  readonly now: () => number;
  /**
   * Users whose redactions act as a server admin's (the config `admins`).
   * The homeserver's own admins are not asked: a pushed event carries no token.
   */
  readonly admins: ReadonlySet<string>;
  /**
   * Rooms whose `m.room.create` was pushed have their whole history in the
   * index (room-history-status-service.ts): recorded in the same transaction.
   */
  readonly roomHistory?: Pick<RoomHistoryBackfillRepository, "completeFromCreation">;
}

/** The credentials of one request: the Bearer token and the `access_token` query, if given. */
export interface PresentedTokens {
  /** The Authorization header as sent; undefined when absent. */
  readonly authorization: string | undefined;
  /** The `access_token` query parameter(s); undefined when absent. */
  readonly queryToken: string | readonly string[] | undefined;
}

/** What one pushed transaction did (for logs and tests). */
export interface TransactionOutcome {
  readonly replay: boolean;
  readonly recorded: number;
  readonly redacted: number;
  readonly skipped: number;
}

const digest = (value: string) => createHash("sha256").update(value, "utf8").digest();

/** Receives the homeserver's transactions and pings. */
export class AppServiceReceiver {
  readonly #tokenDigest: Buffer;
  readonly #indexer: RoomEventIndexer;

  constructor(private readonly deps: AppServiceReceiverDeps) {
    this.#tokenDigest = digest(deps.hsToken);
    this.#indexer = new RoomEventIndexer(deps.events, deps.references);
  }

  /**
   * Checks the homeserver's credentials (spec, application-service API
   * "Authorization"): none → 401 M_MISSING_TOKEN; a Bearer header that is not
   * the hs_token, a non-Bearer header, or a query `access_token` that is not
   * the hs_token (legacy servers send both; both must match) → 403 M_FORBIDDEN.
   */
  authorize(tokens: PresentedTokens): void {
    const { authorization, queryToken } = tokens;
    if (authorization === undefined && queryToken === undefined) {
      throw new MatrixError("M_MISSING_TOKEN", "Missing hs_token");
    }
    const presented: string[] = [];
    if (authorization !== undefined) {
      const match = /^Bearer (\S+)$/.exec(authorization);
      presented.push(match?.[1] ?? "");
    }
    if (queryToken !== undefined) {
      // A repeated parameter is refused rather than guessed at.
      presented.push(typeof queryToken === "string" ? queryToken : "");
    }
    // Every presented token is compared (no early exit), in constant time.
    let ok = true;
    for (const token of presented) {
      ok = timingSafeEqual(digest(token), this.#tokenDigest) && ok;
    }
    if (!ok) throw new MatrixError("M_FORBIDDEN", "Invalid hs_token");
  }

  /**
   * Records one transaction's events, idempotently by transaction id and by
   * event id; resolves once committed (and the redaction policy has run).
   */
  async receive(txnId: string, body: unknown): Promise<TransactionOutcome> {
    const raw = transactionEvents(body);
    const parsed = raw.map(parsePushedEvent);
    const skipped = parsed.filter((e) => e === undefined).length;
    const events = parsed.filter((e): e is PushedEvent => e !== undefined);
    const deps = this.deps;
    const result = await deps.database.transaction(async (tx) => {
      const fresh = await deps.events.recordTransaction(tx, deps.asId, txnId, deps.now());
      if (!fresh) return undefined;
      let recorded = 0;
      const redactions: { redaction: PushedEvent; target: AppServiceEventRow }[] = [];
      for (const event of events) {
        const indexed = await this.#indexer.index(tx, event);
        if (indexed.redacted) redactions.push({ redaction: event, target: indexed.redacted });
        if (indexed.recorded) recorded++;
        if (event.type === "m.room.create" && event.stateKey === "") {
          await deps.roomHistory?.completeFromCreation(tx, event.roomId, deps.now());
        }
      }
      return { recorded, redactions };
    });
    if (!result) return { replay: true, recorded: 0, redacted: 0, skipped };
    for (const { redaction, target } of result.redactions) {
      await deps.redactionPolicy.apply({
        redactedEvent: {
          type: target.type,
          stateKey: target.stateKey,
          sender: target.sender,
          content: target.mediaContent,
        },
        redactingSender: redaction.sender,
        redactingSenderIsAdmin: deps.admins.has(redaction.sender),
      });
    }
    if (skipped > 0)
      deps.logger.warn({ txn_id: txnId, skipped }, "skipped malformed pushed events");
    return {
      replay: false,
      recorded: result.recorded,
      redacted: result.redactions.length,
      skipped,
    };
  }
}
