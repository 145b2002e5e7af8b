// Pure helpers of the call page: no DOM, no LiveKit, tested with `node --test`.

export const BRIDGE_IDENTITY = "visio-bridge";
export const CHAT_TOPIC = "lk.chat";
export const LEGACY_CHAT_TOPIC = "lk-chat-topic";
export const MAX_CHAT_CHARS = 4000;

/** Up to two initials for a tile without video ("Zoé Martin (invité)" → "ZM"). */
export function initials(name: string): string {
  const words = name
    .replace(/\([^)]*\)/g, " ")
    .split(/[\s\-_.]+/)
    .filter((word) => /\p{L}|\p{N}/u.test(word));
  const letters = words.slice(0, 2).map((word) => Array.from(word.replace(/^[^\p{L}\p{N}]+/u, ""))[0] ?? "");
  return letters.join("").toLocaleUpperCase() || "?";
}

export interface Grant {
  token: string;
  livekitUrl: string;
}

/** The token the bridge put in a built-in `frontend_url` ("#livekit_url=…&token=…&room=…"),
 *  as found in its JSON answers (lobby admission, /api/token). */
export function grantFromFrontendUrl(url: string, fallbackLivekitUrl: string): Grant | null {
  const hash = url.indexOf("#");
  const query = url.indexOf("?");
  const start = hash >= 0 ? hash : query;
  if (start < 0) return null;
  const params = new URLSearchParams(url.slice(start + 1));
  const token = params.get("token");
  if (!token) return null;
  return { token, livekitUrl: params.get("livekit_url") || params.get("liveKitUrl") || fallbackLivekitUrl };
}

/** Whether LiveKit's room metadata says the call is being recorded (null: it says nothing). */
export function recordingFromMetadata(metadata: string | undefined): boolean | null {
  if (!metadata) return null;
  try {
    const data: unknown = JSON.parse(metadata);
    if (data && typeof data === "object" && "slug" in data) {
      return (data as { recording_status?: unknown }).recording_status === "recording";
    }
  } catch {
    return null;
  }
  return null;
}

/** A legacy chat packet's text (`{id, timestamp, message}`), or null when it is none. */
export function legacyChatText(payload: Uint8Array): { id: string; text: string } | null {
  try {
    const data: unknown = JSON.parse(new TextDecoder().decode(payload));
    if (!data || typeof data !== "object") return null;
    const { id, message, ignoreLegacy } = data as Record<string, unknown>;
    if (ignoreLegacy === true || typeof message !== "string" || !message.trim()) return null;
    return { id: typeof id === "string" ? id : "", text: message.slice(0, MAX_CHAT_CHARS) };
  } catch {
    return null;
  }
}

/** What to send as a chat message, or null for nothing (blank). */
export function chatToSend(raw: string): string | null {
  const text = raw.trim();
  return text ? text.slice(0, MAX_CHAT_CHARS) : null;
}

export type EndKind = "left" | "ended" | "lost";

/** What a disconnection means for the person (LiveKit's DisconnectReason numbers). */
export function endKind(reason: number | undefined): EndKind {
  // CLIENT_INITIATED = 1; DUPLICATE_IDENTITY = 2; SERVER_SHUTDOWN = 3; PARTICIPANT_REMOVED = 4;
  // ROOM_DELETED = 5; STATE_MISMATCH = 6; JOIN_FAILURE = 7; ... ROOM_CLOSED = 10.
  if (reason === 1) return "left";
  if (reason === 4 || reason === 5 || reason === 10 || reason === 3) return "ended";
  return "lost";
}

/** A participant the page shows as a tile: people, never the bridge's own participant. */
export function isShown(identity: string, isAgent: boolean): boolean {
  return identity !== BRIDGE_IDENTITY && !isAgent;
}

/** HH:MM in the page's language. */
export function clock(timestampMs: number, language: string): string {
  return new Date(timestampMs).toLocaleTimeString(language === "en" ? "en-GB" : "fr-FR", {
    hour: "2-digit",
    minute: "2-digit",
  });
}
