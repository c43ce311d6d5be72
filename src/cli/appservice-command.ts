/** `mxcd appservice generate-registration` (docs/attached.md). */
import { writeFileSync } from "node:fs";
import { generateRegistration, registrationYaml } from "../homeserver/app-service-registration.js";

export function generateRegistrationCommand(options: {
  output: string;
  url?: string;
  id?: string;
  senderLocalpart?: string;
}): void {
  const registration = generateRegistration({
    url: options.url ?? null,
    ...(options.id !== undefined && { id: options.id }),
    ...(options.senderLocalpart !== undefined && { senderLocalpart: options.senderLocalpart }),
  });
  // "wx": never overwrite a registration the homeserver may already know;
  // 0600: the file holds both tokens.
  writeFileSync(options.output, registrationYaml(registration), { flag: "wx", mode: 0o600 });
  console.error(
    `wrote ${options.output}: add it to the homeserver's app_service_config_files and restart it`,
  );
  if (registration.url === null) {
    console.error("note: no --url given, so the homeserver will not push events until you set url");
  }
}
