/**
 * `mxcd register-user`, like Synapse's `register_new_matrix_user`: by default
 * it writes the account straight into the configured database (the server
 * need not run); with `--url` it uses a running server's shared-secret
 * registration API, exactly as Synapse's tool does.
 */
import { createInterface } from "node:readline/promises";
import { registrationMac } from "../accounts/shared-secret-registration.js";
import { createServices } from "../app.js";
import { loadConfigFile } from "../config/load-config.js";
import { createDatabase } from "../db/database.js";
import { runMigrations } from "../db/migrate.js";
import { MatrixError } from "../domain/matrix-error.js";

export interface RegisterUserOptions {
  config: string;
  user?: string;
  password?: string;
  admin?: boolean;
  url?: string;
}

export async function registerUserCommand(options: RegisterUserOptions): Promise<void> {
  const config = loadConfigFile(options.config);
  const user = options.user ?? (await ask("New user localpart: "));
  const password = options.password ?? (await ask("Password: "));
  if (!password) throw new Error("a password is required");
  const admin = options.admin === true;

  if (options.url) {
    if (!config.registration_shared_secret) {
      throw new Error("registration_shared_secret is not set in the config");
    }
    const userId = await registerOverHttp(options.url, config.registration_shared_secret, {
      user,
      password,
      admin,
    });
    console.log(`registered ${userId}${admin ? " (admin)" : ""}`);
    return;
  }

  const database = createDatabase(config.database);
  try {
    await runMigrations(database);
    const { accounts } = createServices(config, database);
    const userId = await accounts.register({ localpart: user.toLowerCase(), password, admin });
    console.log(`registered ${userId}${admin ? " (admin)" : ""}`);
  } catch (error) {
    if (error instanceof MatrixError) throw new Error(`${error.errcode}: ${error.message}`);
    throw error;
  } finally {
    await database.close();
  }
}

async function registerOverHttp(
  baseUrl: string,
  secret: string,
  fields: { user: string; password: string; admin: boolean },
): Promise<string> {
  const endpoint = new URL("/_synapse/admin/v1/register", baseUrl);
  const nonceResponse = await fetch(endpoint);
  const { nonce } = (await nonceResponse.json()) as { nonce?: string };
  if (!nonceResponse.ok || !nonce) throw new Error(`cannot get a nonce from ${endpoint}`);
  const mac = registrationMac(secret, { nonce, username: fields.user, ...fields });
  const response = await fetch(endpoint, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({
      nonce,
      username: fields.user,
      password: fields.password,
      admin: fields.admin,
      mac,
    }),
  });
  const body = (await response.json()) as { user_id?: string; errcode?: string; error?: string };
  if (!response.ok || !body.user_id) throw new Error(`${body.errcode}: ${body.error}`);
  return body.user_id;
}

async function ask(question: string): Promise<string> {
  if (!process.stdin.isTTY) throw new Error(`missing option for: ${question.trim()}`);
  const rl = createInterface({ input: process.stdin, output: process.stderr });
  try {
    return (await rl.question(question)).trim();
  } finally {
    rl.close();
  }
}
