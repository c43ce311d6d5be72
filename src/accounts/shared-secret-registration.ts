/**
 * Synapse's shared-secret registration (`/_synapse/admin/v1/register`),
 * byte-for-byte compatible so `register_new_matrix_user` and admin tools
 * work: a single-use nonce (valid 60 s), then an HMAC-SHA1, keyed by
 * `registration_shared_secret`, over
 * `nonce \0 username \0 password \0 ("admin" | "notadmin") [\0 user_type]`.
 */
import { createHmac, randomBytes, timingSafeEqual } from "node:crypto";
import { MatrixError } from "../domain/matrix-error.js";
import type { RegistrationNonceRepository } from "../repositories/registration-nonce-repository.js";
import { newDeviceId } from "./access-token.js";
import type { AccountService, Session } from "./account-service.js";

const NONCE_LIFETIME_MS = 60_000;
const MAX_FIELD_LENGTH = 512;

/** Computes the registration MAC (hex), as the client side does. */
export function registrationMac(
  secret: string,
  fields: { nonce: string; username: string; password: string; admin: boolean; userType?: string },
): string {
  const hmac = createHmac("sha1", Buffer.from(secret, "utf8"));
  const parts = [
    fields.nonce,
    fields.username,
    fields.password,
    fields.admin ? "admin" : "notadmin",
  ];
  if (fields.userType) parts.push(fields.userType);
  hmac.update(parts.join("\x00"), "utf8");
  return hmac.digest("hex");
}

export class SharedSecretRegistration {
  constructor(
    private readonly secret: string | null,
    private readonly nonces: RegistrationNonceRepository,
    private readonly accounts: AccountService,
    private readonly now: () => number = Date.now,
  ) {}

  private assertEnabled(): string {
    if (!this.secret) {
      throw new MatrixError("M_UNKNOWN", "Shared secret registration is not enabled");
    }
    return this.secret;
  }

  /** A fresh single-use nonce. */
  async newNonce(): Promise<string> {
    this.assertEnabled();
    const nonce = randomBytes(16).toString("hex");
    await this.nonces.deleteOlderThan(this.now() - NONCE_LIFETIME_MS);
    await this.nonces.insert(nonce, this.now());
    return nonce;
  }

  /** Checks the request in Synapse's order and creates the user. */
  async register(body: Record<string, unknown>): Promise<Session> {
    const secret = this.assertEnabled();
    if (body.nonce === undefined) {
      throw new MatrixError("M_MISSING_PARAM", "nonce must be specified");
    }
    const nonce = String(body.nonce);
    if (!(await this.nonces.take(nonce, this.now() - NONCE_LIFETIME_MS))) {
      throw new MatrixError("M_UNKNOWN", "unrecognised nonce");
    }
    const username = body.username;
    if (!isSafeField(username)) throw new MatrixError("M_INVALID_PARAM", "Invalid username");
    const password = body.password;
    if (!isSafeField(password)) throw new MatrixError("M_INVALID_PARAM", "Invalid password");
    const admin = body.admin === undefined || body.admin === null ? false : body.admin;
    if (typeof admin !== "boolean") throw new MatrixError("M_INVALID_PARAM", "Invalid admin flag");
    const userType = body.user_type;
    if (userType !== undefined && userType !== null && typeof userType !== "string") {
      throw new MatrixError("M_INVALID_PARAM", "Invalid user type");
    }
    const displayname = typeof body.displayname === "string" ? body.displayname : undefined;
    const want = registrationMac(secret, {
      nonce,
      username,
      password,
      admin,
      userType: userType ?? undefined,
    });
    if (!macMatches(want, body.mac)) throw new MatrixError("M_FORBIDDEN", "HMAC incorrect");

    const userId = await this.accounts.register({
      localpart: username.toLowerCase(),
      password,
      admin,
      displayname: displayname ?? null,
      userType: userType ?? null,
    });
    return this.accounts.issueToken(userId, newDeviceId());
  }
}

function isSafeField(value: unknown): value is string {
  return typeof value === "string" && value.length <= MAX_FIELD_LENGTH && !value.includes("\x00");
}

function macMatches(want: string, got: unknown): boolean {
  if (typeof got !== "string") return false;
  const a = Buffer.from(want, "ascii");
  const b = Buffer.from(got, "ascii");
  return a.length === b.length && timingSafeEqual(a, b);
}
