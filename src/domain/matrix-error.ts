/**
 * The one home of the Matrix error contract (Matrix spec, client-server API
 * "Standard error response"): every error mxcd answers is a `MatrixError`,
 * serialised as `{"errcode", "error"}` plus optional extra fields.
 *
 * The errcode → default status table is exhaustive over `Errcode`, so adding an
 * errcode without deciding its status does not compile.
 */

export type Errcode =
  | "M_BAD_JSON"
  | "M_CANNOT_OVERWRITE_MEDIA"
  | "M_EXCLUSIVE"
  | "M_FORBIDDEN"
  | "M_GUEST_ACCESS_FORBIDDEN"
  | "M_INVALID_PARAM"
  | "M_INVALID_USERNAME"
  | "M_LIMIT_EXCEEDED"
  | "M_MISSING_PARAM"
  | "M_MISSING_TOKEN"
  | "M_NOT_FOUND"
  | "M_NOT_JSON"
  | "M_NOT_YET_UPLOADED"
  | "M_RESOURCE_LIMIT_EXCEEDED"
  | "M_TOO_LARGE"
  | "M_UNAUTHORIZED"
  | "M_UNKNOWN"
  | "M_UNKNOWN_TOKEN"
  | "M_UNRECOGNIZED"
  | "M_USER_DEACTIVATED"
  | "M_USER_IN_USE"
  | "M_USER_LIMIT_EXCEEDED"
  | "M_USER_LOCKED";

const DEFAULT_STATUS: { readonly [K in Errcode]: number } = {
  M_BAD_JSON: 400,
  M_CANNOT_OVERWRITE_MEDIA: 409,
  M_EXCLUSIVE: 400,
  M_FORBIDDEN: 403,
  M_GUEST_ACCESS_FORBIDDEN: 403,
  M_INVALID_PARAM: 400,
  M_INVALID_USERNAME: 400,
  M_LIMIT_EXCEEDED: 429,
  M_MISSING_PARAM: 400,
  M_MISSING_TOKEN: 401,
  M_NOT_FOUND: 404,
  M_NOT_JSON: 400,
  M_NOT_YET_UPLOADED: 504,
  M_RESOURCE_LIMIT_EXCEEDED: 400,
  M_TOO_LARGE: 413,
  M_UNAUTHORIZED: 401,
  M_UNKNOWN: 400,
  M_UNKNOWN_TOKEN: 401,
  M_UNRECOGNIZED: 404,
  M_USER_DEACTIVATED: 403,
  M_USER_IN_USE: 400,
  // Spec v1.18 (MSC4335): a per-user limit such as an upload quota; MUST carry `info_uri`.
  M_USER_LIMIT_EXCEEDED: 403,
  M_USER_LOCKED: 401,
};

/** An error that reaches the client as a Matrix error body. */
export class MatrixError extends Error {
  readonly errcode: Errcode;
  readonly status: number;
  readonly extra: Readonly<Record<string, unknown>>;

  /**
   * @param status defaults to the errcode's usual status; pass one where the
   *   spec or Synapse pairs an errcode with another status (405 M_UNRECOGNIZED,
   *   502 M_TOO_LARGE, 404 M_UNKNOWN, ...).
   */
  constructor(
    errcode: Errcode,
    message: string,
    status: number = DEFAULT_STATUS[errcode],
    extra: Record<string, unknown> = {},
  ) {
    super(message);
    this.name = "MatrixError";
    this.errcode = errcode;
    this.status = status;
    this.extra = extra;
  }

  /** The JSON body the client receives. */
  toJSON(): Record<string, unknown> {
    return { errcode: this.errcode, error: this.message, ...this.extra };
  }
}

/** The default status of an errcode (exported for tests and documentation). */
export function defaultStatus(errcode: Errcode): number {
  return DEFAULT_STATUS[errcode];
}
