/**
 * The application-service API mxcd serves to the homeserver (Matrix spec,
 * application-service API; attached-mode.md §3.2): transactions and ping.
 * Any other `/_matrix/app/*` path falls through to the server's 404
 * `M_UNRECOGNIZED` (405 for a known path with the wrong method), as the spec's
 * "Unknown routes" asks.
 *
 * The hs_token is checked in `onRequest`, before the body is read, so an
 * unauthenticated caller cannot make mxcd buffer or parse anything.
 */
import type { FastifyInstance, FastifyRequest } from "fastify";
import { MatrixError } from "../../domain/matrix-error.js";
import type { AppServiceReceiver } from "../../homeserver/app-service-receiver.js";
import { NULL_BYTES_IN_BODY } from "../null-bytes.js";

/** The service behind the application-service routes. */
export interface AppServiceRouteDeps {
  receiver: AppServiceReceiver;
}

/**
 * Largest transaction body: Synapse sends at most 100 events, each at most
 * 64 KiB as a PDU; client format adds a little. Larger bodies get 413.
 */
export const APP_SERVICE_BODY_LIMIT = 8 * 1024 * 1024;
/** Longest transaction id accepted (Synapse's are decimal integers). */
const MAX_TXN_ID_LENGTH = 255;

type TxnParams = { Params: { txnId: string } };

/** Registers `PUT /_matrix/app/v1/transactions/{txnId}` and `POST /_matrix/app/v1/ping`. */
export function registerAppServiceRoutes(app: FastifyInstance, deps: AppServiceRouteDeps): void {
  const authorize = async (request: FastifyRequest) => {
    const query = request.query as Record<string, string | string[] | undefined>;
    deps.receiver.authorize({
      authorization: request.headers.authorization,
      queryToken: query.access_token,
    });
  };

  app.put<TxnParams>(
    "/_matrix/app/v1/transactions/:txnId",
    // Events with NUL in their content are indexed, not refused: a refused
    // transaction would be retried forever (null-bytes.ts).
    { onRequest: authorize, bodyLimit: APP_SERVICE_BODY_LIMIT, config: NULL_BYTES_IN_BODY },
    async (request) => {
      const { txnId } = request.params;
      if (txnId.length === 0 || txnId.length > MAX_TXN_ID_LENGTH) {
        throw new MatrixError("M_INVALID_PARAM", "Invalid transaction id");
      }
      await deps.receiver.receive(txnId, request.body);
      return {};
    },
  );

  // The homeserver's reachability check (spec v1.7); the body's
  // transaction_id needs no answer beyond {}.
  app.post("/_matrix/app/v1/ping", { onRequest: authorize }, async () => ({}));
}
