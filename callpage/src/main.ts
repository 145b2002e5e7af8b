// The call page: pre-join (preview, devices, name), lobby, the call (tiles, controls, chat),
// and its end. Plain DOM over livekit-client: a handful of screens need no framework.
import {
  ConnectionState,
  LocalAudioTrack,
  LocalVideoTrack,
  Participant,
  RemoteParticipant,
  RemoteTrack,
  Room,
  RoomEvent,
  Track,
  createLocalAudioTrack,
  createLocalVideoTrack,
} from "livekit-client";
import { fill, texts } from "./i18n";
import {
  CHAT_TOPIC,
  LEGACY_CHAT_TOPIC,
  chatToSend,
  clock,
  endKind,
  grantFromFrontendUrl,
  initials,
  isShown,
  legacyChatText,
  recordingFromMetadata,
  type Grant,
} from "./logic";

interface PageConfig {
  mode: "guest" | "member";
  slug: string;
  join_url?: string;
  recorded: boolean;
  lobby: boolean;
  language: string;
  livekit_url: string;
}

const config = JSON.parse(document.getElementById("visio-config")?.textContent ?? "{}") as PageConfig;
const t = texts(config.language);
const started = performance.now();

function el<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attributes: Record<string, string> = {},
  ...children: (Node | string)[]
): HTMLElementTagNameMap[K] {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) element.setAttribute(name, value);
  element.append(...children);
  return element;
}

const byId = (id: string): HTMLElement | null => document.getElementById(id);
const pause = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

function setStatus(text: string, error = false): void {
  const status = byId("status");
  if (!status) return;
  status.textContent = text;
  status.classList.toggle("visio-status--error", error);
  if (error) status.setAttribute("role", "alert");
}

// --- Pre-join: preview and devices ---------------------------------------------------------

const choice = { camera: true, microphone: true, videoDevice: "", audioDevice: "" };
let previewVideo: LocalVideoTrack | null = null;
let previewAudio: LocalAudioTrack | null = null;

function toggleButton(id: string, label: () => string, pressed: () => boolean, onClick: () => void) {
  const button = el("button", { type: "button", id, class: "fr-btn fr-btn--secondary visio-toggle" });
  const render = () => {
    button.textContent = label();
    button.setAttribute("aria-pressed", String(!pressed()));
    button.classList.toggle("visio-toggle--off", !pressed());
  };
  button.addEventListener("click", () => {
    onClick();
    render();
  });
  render();
  return { button, render };
}

async function deviceSelect(kind: MediaDeviceKind, id: string, label: string, onChange: (deviceId: string) => void) {
  const devices = await Room.getLocalDevices(kind, false).catch(() => [] as MediaDeviceInfo[]);
  const select = el("select", { id, class: "fr-select" });
  devices.forEach((device, index) =>
    select.append(el("option", { value: device.deviceId }, device.label || `${label} ${index + 1}`)),
  );
  select.addEventListener("change", () => onChange(select.value));
  return el("div", { class: "fr-select-group visio-device" }, el("label", { class: "fr-label", for: id }, label), select);
}

async function setUpPreview(): Promise<void> {
  const preview = byId("preview");
  if (!preview) return;
  const video = el("video", { class: "visio-preview__video", "aria-label": t.previewLabel, muted: "", playsinline: "" });
  video.muted = true;
  const placeholder = el("p", { class: "visio-preview__off", hidden: "" }, t.cameraOff);
  const frame = el("div", { class: "visio-preview__frame" }, video, placeholder);
  preview.append(frame);
  try {
    previewVideo = await createLocalVideoTrack({ resolution: { width: 640, height: 360 } });
    previewVideo.attach(video);
  } catch {
    choice.camera = false;
    placeholder.textContent = t.noCamera;
  }
  try {
    previewAudio = await createLocalAudioTrack();
  } catch {
    choice.microphone = false;
  }
  const showFrame = () => {
    video.hidden = !choice.camera || !previewVideo;
    placeholder.hidden = choice.camera && !!previewVideo;
  };
  showFrame();
  const camera = toggleButton(
    "preview-camera",
    () => (choice.camera ? t.cameraOn : t.cameraOff),
    () => choice.camera,
    () => {
      choice.camera = !choice.camera;
      if (previewVideo) void (choice.camera ? previewVideo.unmute() : previewVideo.mute());
      showFrame();
    },
  );
  const microphone = toggleButton(
    "preview-microphone",
    () => (choice.microphone ? t.micOn : t.micOff),
    () => choice.microphone,
    () => {
      choice.microphone = !choice.microphone;
    },
  );
  const toggles = el("div", { class: "visio-preview__toggles" }, camera.button, microphone.button);
  const cameras = await deviceSelect("videoinput", "camera-device", t.camera, (deviceId) => {
    choice.videoDevice = deviceId;
    void previewVideo?.restartTrack({ deviceId });
  });
  const microphones = await deviceSelect("audioinput", "microphone-device", t.microphone, (deviceId) => {
    choice.audioDevice = deviceId;
    void previewAudio?.restartTrack({ deviceId });
  });
  preview.append(toggles, el("div", { class: "visio-preview__devices" }, cameras, microphones));
}

function stopPreview(): void {
  previewVideo?.stop();
  previewAudio?.stop();
  previewVideo = previewAudio = null;
}

// --- Getting a token: guests (name, maybe the lobby) and members (the widget API) -----------

async function guestGrant(name: string): Promise<Grant | null> {
  const response = await fetch(config.join_url ?? location.pathname, {
    method: "POST",
    headers: { Accept: "application/json", "Content-Type": "application/x-www-form-urlencoded" },
    body: new URLSearchParams({ name }).toString(),
    credentials: "same-origin",
  });
  const body = (await response.json().catch(() => ({}))) as Record<string, string>;
  if (response.status === 429) {
    setStatus(body.error ?? t.failed, true);
    return null;
  }
  if (!response.ok) {
    setStatus(body.error ?? t.failed, true);
    return null;
  }
  if (body.state === "joined") return { token: body.token, livekitUrl: body.livekit_url };
  if (body.state === "waiting") return waitInLobby(body.request_id);
  setStatus(t.failed, true);
  return null;
}

async function waitInLobby(requestId: string): Promise<Grant | null> {
  document.body.dataset.screen = "lobby";
  const title = document.querySelector(".visio-title");
  if (title) title.textContent = t.waitingTitle;
  byId("join-form")?.setAttribute("hidden", "");
  setStatus(t.waiting);
  for (;;) {
    let body: Record<string, string>;
    try {
      const response = await fetch(`/api/lobby/${encodeURIComponent(requestId)}`, { cache: "no-store" });
      if (response.status === 429) {
        await pause((Number(response.headers.get("Retry-After")) || 5) * 1000);
        continue;
      }
      body = (await response.json()) as Record<string, string>;
    } catch {
      await pause(2000);
      continue;
    }
    if (body.state === "admitted" && body.frontend_url) {
      return grantFromFrontendUrl(body.frontend_url, config.livekit_url);
    }
    if (body.state === "refused" || body.state === "expired" || body.state === "ended" || body.errcode) {
      const lobbyTexts: Record<string, string> = { refused: t.refused, expired: t.expired, ended: t.lobbyEnded };
      setStatus(lobbyTexts[body.state] ?? t.expired, true);
      if (body.state === "ended") document.body.dataset.screen = "ended";
      return null;
    }
  }
}

// The Matrix widget API (postMessage with the client hosting the iframe): get_openid.
const widget = (() => {
  const params = new URLSearchParams(location.search);
  const widgetId = params.get("widgetId") ?? "";
  const userId = params.get("userId");
  const pending = new Map<string, (response: Record<string, unknown>) => void>();
  let credentialsWaiter: ((data: Record<string, unknown>) => void) | null = null;
  let counter = 0;
  let ready: () => void = () => {};
  const capabilities = new Promise<void>((resolve) => (ready = resolve));
  const ask = (action: string, data: object) =>
    new Promise<Record<string, unknown>>((resolve) => {
      const requestId = `visio-${++counter}`;
      pending.set(requestId, resolve);
      window.parent.postMessage({ api: "fromWidget", widgetId, requestId, action, data }, "*");
    });
  function start() {
    if (window.parent === window) return;
    window.addEventListener("message", (event) => {
      const message = event.data as Record<string, unknown> | null;
      if (event.source !== window.parent || !message || typeof message !== "object") return;
      if (message.api === "toWidget") {
        window.parent.postMessage({ ...message, response: message.action === "capabilities" ? { capabilities: [] } : {} }, event.origin);
        if (message.action === "openid_credentials" && credentialsWaiter) credentialsWaiter(message.data as Record<string, unknown>);
        if (message.action === "capabilities" || message.action === "notify_capabilities") ready();
      } else if (message.api === "fromWidget" && message.response && pending.has(String(message.requestId))) {
        pending.get(String(message.requestId))?.(message.response as Record<string, unknown>);
        pending.delete(String(message.requestId));
      }
    });
    window.parent.postMessage({ api: "fromWidget", widgetId, requestId: "visio-loaded", action: "content_loaded", data: {} }, "*");
  }
  async function grant(): Promise<Grant | null> {
    await capabilities;
    setStatus(t.signingIn);
    let credentials = await ask("get_openid", {});
    if (credentials.state === "request") {
      credentials = await new Promise((resolve) => (credentialsWaiter = resolve));
    }
    if (credentials.state !== "allowed") {
      setStatus(t.signInRefused, true);
      return null;
    }
    const response = await fetch("/api/token", {
      method: "POST",
      headers: { "Content-Type": "application/json", Accept: "application/json" },
      body: JSON.stringify({
        slug: config.slug,
        user_id: userId,
        openid_token: { access_token: credentials.access_token, matrix_server_name: credentials.matrix_server_name },
      }),
    });
    const body = (await response.json().catch(() => ({}))) as Record<string, string>;
    if (!response.ok) {
      setStatus(`${body.error ?? t.failed} (${body.errcode ?? response.status})`, true);
      return null;
    }
    return { token: body.token, livekitUrl: body.livekit_url || config.livekit_url };
  }
  return { start, grant };
})();

// --- The call ------------------------------------------------------------------------------

const room = new Room({ adaptiveStream: true, dynacast: true });
const tiles = new Map<string, HTMLElement>();
let chatOpen = false;
let unread = 0;

function tileFor(participant: Participant, screen = false): HTMLElement {
  const key = participant.identity + (screen ? "#screen" : "");
  let tile = tiles.get(key);
  if (!tile) {
    const name = screen ? fill(t.screenOf, { name: participant.name || participant.identity }) : participant.name || participant.identity;
    const label = participant.isLocal ? `${name} (${t.you})` : name;
    tile = el(
      "li",
      { class: "visio-tile", "data-identity": participant.identity, "data-name": name },
      el("div", { class: "visio-tile__initials", "aria-hidden": "true" }, initials(name)),
      el("p", { class: "visio-tile__name" }, el("span", { class: "visio-tile__mic", "aria-hidden": "true" }), label),
    );
    if (screen) tile.classList.add("visio-tile--screen");
    tiles.set(key, tile);
  }
  // Events can come before the call's screen is built: the tile joins the list once it exists.
  if (!tile.isConnected) byId("tiles")?.append(tile);
  return tile;
}

function renderParticipant(participant: Participant): void {
  if (!participant.isLocal && !isShown(participant.identity, participant.isAgent)) return;
  const tile = tileFor(participant);
  const camera = participant.getTrackPublication(Track.Source.Camera);
  const microphone = participant.getTrackPublication(Track.Source.Microphone);
  const videoTrack = camera && !camera.isMuted ? camera.track : undefined;
  let video = tile.querySelector("video");
  if (videoTrack) {
    if (!video) {
      video = el("video", { class: "visio-tile__video", playsinline: "", muted: "" });
      video.muted = true;
      tile.prepend(video);
    }
    videoTrack.attach(video);
  } else if (video) {
    video.remove();
  }
  tile.classList.toggle("visio-tile--video", !!videoTrack);
  const micOn = !!microphone && !microphone.isMuted;
  tile.classList.toggle("visio-tile--muted", !micOn);
  const mic = tile.querySelector(".visio-tile__mic");
  if (mic) mic.textContent = micOn ? "" : "🔇 ";
  tile.setAttribute("aria-label", `${tile.dataset.name}${participant.isLocal ? ` (${t.you})` : ""}, ${micOn ? t.micOn : t.micOff}, ${videoTrack ? t.cameraOn : t.cameraOff}`);
  if (!participant.isLocal) {
    tile.dataset.video = camera?.isSubscribed && camera.track ? "subscribed" : "none";
    tile.dataset.audio = microphone?.isSubscribed && microphone.track ? "subscribed" : "none";
  }
  const screen = participant.getTrackPublication(Track.Source.ScreenShare);
  const screenKey = `${participant.identity}#screen`;
  if (screen?.track && !screen.isMuted) {
    const screenTile = tileFor(participant, true);
    let screenVideo = screenTile.querySelector("video");
    if (!screenVideo) {
      screenVideo = el("video", { class: "visio-tile__video", playsinline: "", muted: "" });
      screenVideo.muted = true;
      screenTile.prepend(screenVideo);
    }
    screen.track.attach(screenVideo);
    screenTile.classList.add("visio-tile--video");
  } else if (tiles.has(screenKey)) {
    tiles.get(screenKey)?.remove();
    tiles.delete(screenKey);
  }
  layout();
}

function removeParticipant(participant: Participant): void {
  for (const key of [participant.identity, `${participant.identity}#screen`]) {
    tiles.get(key)?.remove();
    tiles.delete(key);
  }
  layout();
}

function layout(): void {
  const list = byId("tiles");
  if (list) list.dataset.count = String(Math.min(tiles.size, 9));
}

function renderAll(): void {
  renderParticipant(room.localParticipant);
  room.remoteParticipants.forEach((participant) => renderParticipant(participant));
  renderControls();
}

function controlButton(id: string, onClick: () => Promise<unknown> | void): HTMLButtonElement {
  const button = el("button", { type: "button", id, class: "fr-btn visio-control" });
  button.addEventListener("click", async () => {
    button.disabled = true;
    try {
      await onClick();
    } catch (error) {
      console.warn("control", id, error);
    } finally {
      button.disabled = false;
      renderControls();
    }
  });
  return button;
}

function renderControls(): void {
  const local = room.localParticipant;
  const set = (id: string, on: boolean, whenOn: string, whenOff: string) => {
    const button = byId(id);
    if (!button) return;
    button.textContent = on ? whenOn : whenOff;
    button.setAttribute("aria-pressed", String(on));
    button.classList.toggle("visio-control--off", !on);
  };
  set("control-microphone", local.isMicrophoneEnabled, t.mute, t.unmute);
  set("control-camera", local.isCameraEnabled, t.turnCameraOff, t.turnCameraOn);
  set("control-screen", local.isScreenShareEnabled, t.stopShare, t.share);
  const chat = byId("control-chat");
  if (chat) {
    chat.setAttribute("aria-expanded", String(chatOpen));
    chat.textContent = unread && !chatOpen ? `${t.chat} (${unread})` : t.chat;
  }
}

function buildCall(): void {
  const call = byId("call");
  if (!call) return;
  const banner = el("p", { id: "recording-banner", class: "visio-banner visio-banner--recording", role: "note" }, t.recording);
  banner.hidden = !config.recorded;
  const connection = el("p", { id: "connection", class: "visio-banner", role: "status", "aria-live": "polite" });
  connection.hidden = true;
  const heading = el("h1", { class: "fr-sr-only", id: "call-title", tabindex: "-1" }, t.callRegion);
  const list = el("ul", { id: "tiles", class: "visio-tiles", "aria-label": t.participants });
  const messages = el("ol", { id: "chat-messages", class: "visio-chat__messages", "aria-live": "polite" });
  const input = el("input", { id: "chat-input", class: "fr-input", maxlength: "4000", autocomplete: "off" });
  const form = el(
    "form",
    { id: "chat-form", class: "visio-chat__form" },
    el("label", { class: "fr-label", for: "chat-input" }, t.chatLabel),
    el("div", { class: "visio-chat__row" }, input, el("button", { type: "submit", class: "fr-btn" }, t.send)),
  );
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const text = chatToSend(input.value);
    if (!text) return;
    input.value = "";
    void room.localParticipant
      .sendText(text, { topic: CHAT_TOPIC })
      .then(() => addMessage(room.localParticipant.name || t.you, text, Date.now(), true))
      .catch((error) => console.warn("chat", error));
  });
  const chat = el(
    "aside",
    { id: "chat", class: "visio-chat", "aria-labelledby": "chat-title" },
    el("h2", { id: "chat-title", class: "visio-chat__title" }, t.chatTitle),
    el("p", { class: "fr-hint-text" }, t.chatHint),
    messages,
    form,
  );
  chat.hidden = true;
  const controls = el(
    "div",
    { class: "visio-controls", role: "toolbar", "aria-label": t.callRegion },
    controlButton("control-microphone", () => room.localParticipant.setMicrophoneEnabled(!room.localParticipant.isMicrophoneEnabled)),
    controlButton("control-camera", () => room.localParticipant.setCameraEnabled(!room.localParticipant.isCameraEnabled)),
    controlButton("control-screen", () => room.localParticipant.setScreenShareEnabled(!room.localParticipant.isScreenShareEnabled)),
    controlButton("control-chat", () => {
      chatOpen = !chatOpen;
      chat.hidden = !chatOpen;
      call.classList.toggle("visio-call--chat", chatOpen);
      if (chatOpen) {
        unread = 0;
        input.focus();
      }
    }),
    controlButton("control-leave", () => room.disconnect()),
  );
  call.append(heading, banner, connection, el("div", { class: "visio-stage" }, list, chat), controls);
  const leave = byId("control-leave");
  if (leave) {
    leave.classList.add("visio-control--leave");
    leave.textContent = t.leave;
  }
}

function addMessage(sender: string, text: string, timestampMs: number, own = false): void {
  const list = byId("chat-messages");
  if (!list) return;
  const item = el(
    "li",
    { class: own ? "visio-message visio-message--own" : "visio-message" },
    el("p", { class: "visio-message__meta" }, el("strong", { class: "visio-message__sender" }, sender), ` · ${clock(timestampMs || Date.now(), config.language)}`),
    el("p", { class: "visio-message__text" }, text),
  );
  list.append(item);
  item.scrollIntoView({ block: "end" });
  if (!chatOpen && !own) {
    unread += 1;
    renderControls();
  }
}

function showEnd(kind: "left" | "ended" | "lost"): void {
  document.body.dataset.screen = "ended";
  const call = byId("call");
  if (call) call.hidden = true;
  document.querySelectorAll("audio[data-visio]").forEach((audio) => audio.remove());
  const main = byId("main");
  if (!main) return;
  const title = kind === "ended" ? t.endedTitle : kind === "left" ? t.leftTitle : t.lostTitle;
  const heading = el("h1", { id: "end-title", tabindex: "-1" }, title);
  const section = el("section", { id: "end", class: "visio-end fr-container", "data-kind": kind }, heading);
  if (kind === "ended") section.append(el("p", {}, t.ended));
  if (kind === "lost") section.append(el("p", {}, t.lost));
  if (kind !== "ended") {
    const again = el("a", { class: "fr-btn", href: location.pathname + location.search }, t.rejoin);
    section.append(again);
  }
  main.replaceChildren(section);
  heading.focus();
}

async function joinCall(grant: Grant): Promise<void> {
  setStatus(t.joining);
  await previewReady; // the choices (camera, microphone) are known once the preview is set up
  const camera = choice.camera && !!previewVideo;
  const microphone = choice.microphone && !!previewAudio;
  stopPreview();
  room
    .on(RoomEvent.ParticipantConnected, renderParticipant)
    .on(RoomEvent.ParticipantDisconnected, removeParticipant)
    .on(RoomEvent.TrackSubscribed, (track: RemoteTrack, _publication, participant: RemoteParticipant) => {
      if (track.kind === Track.Kind.Audio) {
        const audio = track.attach();
        audio.dataset.visio = participant.identity;
        document.body.append(audio);
      }
      renderParticipant(participant);
    })
    .on(RoomEvent.TrackUnsubscribed, (track: RemoteTrack, _publication, participant: RemoteParticipant) => {
      track.detach().forEach((element) => element.remove());
      renderParticipant(participant);
    })
    .on(RoomEvent.TrackMuted, (_publication, participant) => renderParticipant(participant))
    .on(RoomEvent.TrackUnmuted, (_publication, participant) => renderParticipant(participant))
    .on(RoomEvent.TrackPublished, (_publication, participant) => renderParticipant(participant))
    .on(RoomEvent.TrackUnpublished, (_publication, participant) => renderParticipant(participant))
    .on(RoomEvent.LocalTrackPublished, () => renderAll())
    .on(RoomEvent.LocalTrackUnpublished, () => renderAll())
    .on(RoomEvent.ParticipantNameChanged, (_name, participant) => {
      removeParticipant(participant);
      renderParticipant(participant);
    })
    .on(RoomEvent.ActiveSpeakersChanged, (speakers: Participant[]) => {
      const speaking = new Set(speakers.map((speaker) => speaker.identity));
      tiles.forEach((tile, key) => {
        const on = !key.endsWith("#screen") && speaking.has(tile.dataset.identity ?? "");
        tile.classList.toggle("visio-tile--speaking", on);
        tile.dataset.speaking = String(on);
      });
    })
    .on(RoomEvent.RoomMetadataChanged, (metadata: string) => {
      const recording = recordingFromMetadata(metadata);
      const banner = byId("recording-banner");
      if (banner && recording !== null) banner.hidden = !recording;
    })
    .on(RoomEvent.DataReceived, (payload, participant, _kind, topic) => {
      if (topic !== LEGACY_CHAT_TOPIC) return;
      const message = legacyChatText(payload);
      if (message) addMessage(participant?.name || t.fromRoom, message.text, Date.now());
    })
    .on(RoomEvent.Reconnecting, () => {
      const connection = byId("connection");
      if (connection) {
        connection.textContent = t.reconnecting;
        connection.hidden = false;
      }
      document.body.dataset.connection = "reconnecting";
    })
    .on(RoomEvent.Reconnected, () => {
      const connection = byId("connection");
      if (connection) connection.hidden = true;
      document.body.dataset.connection = "connected";
    })
    .on(RoomEvent.Disconnected, (reason) => showEnd(endKind(reason)));
  room.registerTextStreamHandler(CHAT_TOPIC, async (reader, info) => {
    const text = await reader.readAll();
    const sender = room.remoteParticipants.get(info.identity);
    if (text.trim()) addMessage(sender?.name || info.identity, text, reader.info.timestamp);
  });
  try {
    await room.connect(grant.livekitUrl, grant.token);
  } catch (error) {
    console.warn("connect", error);
    setStatus(t.failed, true);
    return;
  }
  byId("prejoin")?.remove();
  const call = byId("call");
  if (call) call.hidden = false;
  buildCall();
  document.body.dataset.screen = "call";
  document.body.dataset.connection = "connected";
  document.body.dataset.joinedMs = String(Math.round(performance.now() - started));
  renderAll();
  byId("call-title")?.focus();
  const recording = recordingFromMetadata(room.metadata);
  const banner = byId("recording-banner");
  if (banner && recording !== null) banner.hidden = !recording;
  await Promise.all([
    room.localParticipant.setCameraEnabled(camera, choice.videoDevice ? { deviceId: choice.videoDevice } : undefined),
    room.localParticipant.setMicrophoneEnabled(microphone, choice.audioDevice ? { deviceId: choice.audioDevice } : undefined),
  ]).catch((error) => console.warn("publish", error));
  renderAll();
}

// --- Start ---------------------------------------------------------------------------------

function wireJoin(): void {
  const form = byId("join-form") as HTMLFormElement | null;
  const button = byId("join") as HTMLButtonElement | null;
  const go = async (getGrant: () => Promise<Grant | null>) => {
    if (button) button.disabled = true;
    try {
      const grant = await getGrant();
      if (grant) {
        await joinCall(grant);
        return;
      }
    } catch (error) {
      console.warn("join", error);
      setStatus(t.failed, true);
    }
    if (button) button.disabled = false;
  };
  if (config.mode === "member") {
    widget.start();
    button?.addEventListener("click", () => void go(() => widget.grant()));
  } else if (form) {
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      const name = (byId("name") as HTMLInputElement | null)?.value ?? "";
      void go(() => guestGrant(name));
    });
  }
}

window.addEventListener("pagehide", () => void room.disconnect());
document.body.dataset.screen = "prejoin";
const previewReady = setUpPreview().catch((error) => console.warn("preview", error));
wireJoin();
