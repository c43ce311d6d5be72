/** What every view needs: the session, the server's name, a status line. */
import { createContext } from "preact";
import { useContext } from "preact/hooks";
import type { Api } from "./api";
import type { ConsoleSettings, Session } from "./session";

export interface ConsoleContext {
  readonly session: Session;
  readonly settings: ConsoleSettings;
  /** Shows (and announces to screen readers) a short status message. */
  announce(message: string, kind?: "info" | "error"): void;
}

export const Ctx = createContext<ConsoleContext | undefined>(undefined);

export function useConsole(): ConsoleContext & { api: Api; serverName: string } {
  const ctx = useContext(Ctx);
  if (!ctx) throw new Error("outside the console");
  return { ...ctx, api: ctx.session.api, serverName: ctx.settings.server_name };
}
