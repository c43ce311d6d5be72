/** mxcd's version, as `server_version` and `mxcd --version` report it. */
export const MXCD_VERSION = "0.1.0";
