/**
 * The 404 of quarantined media. It is a `MatrixError` like any other
 * M_NOT_FOUND (same status, errcode and text, so the wire is what Synapse
 * sends), and a subclass only so that the client download and thumbnail
 * routes can tell "quarantined" from "unknown" and answer with a
 * placeholder image when `quarantine_placeholder` says so
 * (quarantine-placeholder.ts). Every other caller — federation media, the
 * admin API — lets it through as the plain 404 it has always been.
 *
 * Thrown only where the media would otherwise be served: media hidden for
 * another reason too (frozen on a legacy endpoint, an expired pending
 * upload) gets the plain 404, so a placeholder never reveals more than the
 * original would.
 */
import { MatrixError } from "../domain/matrix-error.js";

export class QuarantinedMediaError extends MatrixError {
  constructor(message: string) {
    super("M_NOT_FOUND", message);
  }
}
