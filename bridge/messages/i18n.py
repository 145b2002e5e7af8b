# ruff: noqa: RUF001, RUF002 -- French text uses the typographic apostrophe (U+2019) on purpose
"""Message catalogue, French and English; French by default, for French civil servants.

Texts are format strings; `{name}`-style fields are filled by `bridge/messages/render.py`, which
escapes them for HTML. Keep both languages in step: a test checks that their keys match.

French follows the Imprimerie nationale's rules, and `tests/test_french.py` checks them:
- a no-break space (U+00A0) before « : » and inside guillemets (« texte »);
- a narrow no-break space (U+202F) before « ; ! ? » and between thousands (« 10 000 »);
- the typographic apostrophe ’ (U+2019), never ';
- times and durations as « 7 h 23 », « 1 h 05 », « 5 min », with no-break spaces;
- words people know (« modérateurs (niveau 50) », not « niveau de pouvoir 50 »), and wording that
  needs no point médian (« Zoé Martin (personne invitée) »).
Integers are grouped by `text` itself; `{level:roles}` and `{level:role}` name a power level.
"""

from __future__ import annotations

import string
from typing import Any, Final

FR: Final = {
    "started": "Visio démarrée par {starter} — rejoindre\u00a0: {link}",
    "already_live": (
        "Une visio est déjà en cours (démarrée par {starter}) — rejoindre\u00a0: {link}"
    ),
    "in_call": (
        "Visio en cours, démarrée par {starter} à {time} — {people}\u00a0: {names} — "
        "rejoindre\u00a0: {link}"
    ),
    "ended_by": "Visio terminée par {ender} — {duration}, {people}.",
    "ended_alone": "Visio terminée — {duration}, {people}.",
    "people": "{count} personne",
    "people_plural": "{count} personnes",
    "speakers": "{count} personne",
    "speakers_plural": "{count} personnes",
    "and_more": "et {count} autres",
    "status_live": (
        "Visio en cours depuis {duration}, démarrée par {starter} — rejoindre\u00a0: {link}"
    ),
    "status_none": "Aucune visio n’est en cours. Tapez !visio pour en démarrer une.",
    "nothing_to_end": "Aucune visio n’est en cours\u00a0: il n’y a rien à terminer.",
    "end_forbidden": (
        "Cette visio ne peut être terminée que par la personne qui l’a démarrée ({starter}) ou par "
        "{level:roles}."
    ),
    "livekit_down": (
        "La visio n’a pas pu être créée\u00a0: le serveur de visioconférence ne répond pas. "
        "Réessayez dans quelques minutes. (référence {ref})"
    ),
    "livekit_refused": (
        "La visio n’a pas pu être créée\u00a0: le serveur de visioconférence a refusé la demande. "
        "(référence {ref})"
    ),
    "end_failed": (
        "La visio n’a pas pu être terminée\u00a0: le serveur de visioconférence ne répond pas. "
        "Réessayez. (référence {ref})"
    ),
    "internal_error": "Une erreur inattendue s’est produite. (référence {ref})",
    "hello": (
        "Bonjour\u202f! Pour démarrer une visioconférence dans ce salon, tapez !visio (ou /visio). "
        "Pour connaître les autres commandes, tapez !visio aide."
    ),
    "help": (
        "Commandes Visio\u00a0:\n"
        "• !visio — démarrer une visio, ou obtenir le lien de celle qui est en cours\n"
        "• !visio statut — savoir si une visio est en cours\n"
        "• !visio fin — terminer la visio (réservé à la personne qui l’a démarrée et aux "
        "modérateurs)\n"
        "• !visio réglages — voir ou modifier les réglages du salon\n"
        "• !visio transcription arrêt — arrêter l’enregistrement de la visio en cours\n"
        "• !visio aide — afficher cette aide\n"
        "Dans Element ou Tchap, /visio affiche «\u00a0Commande inconnue\u00a0»\u00a0: choisissez "
        "«\u00a0Envoyer comme message\u00a0», ou tapez !visio."
    ),
    "disabled_here": (
        "Les visios sont désactivées dans ce salon. Pour les réactiver, un administrateur du salon "
        "peut taper !visio réglages enabled oui"
    ),
    "start_forbidden": (
        "Dans ce salon, une visio ne peut être démarrée que par {level:roles} (votre niveau\u00a0: "
        "{yours})."
    ),
    "config_title": "Réglages Visio de ce salon\u00a0:",
    "config_footer": "Pour modifier un réglage\u00a0: !visio réglages <nom> <valeur>",
    "config_default": "valeur par défaut du serveur",
    "config_operator_cap": "limite du serveur\u00a0: {cap}",
    "config_operator_off": "désactivée sur ce serveur",
    "config_changed": "Le réglage «\u00a0{field}\u00a0» est enregistré.",
    "config_invalid": (
        "Réglages Visio refusés\u00a0: le réglage «\u00a0{field}\u00a0» {problem}. Les réglages "
        "précédents restent en vigueur."
    ),
    "config_invalid_content": (
        "Réglages Visio refusés\u00a0: l’événement doit contenir une liste de réglages, chacun "
        "avec sa valeur. Les réglages précédents restent en vigueur."
    ),
    "config_problem_unknown_field": "n’existe pas (réglages existants\u00a0: {allowed})",
    "config_problem_wrong_type": "n’accepte que {allowed}",
    "config_problem_not_allowed": "n’accepte que {allowed}",
    "config_problem_out_of_range": "n’accepte que {allowed}",
    "config_allowed_range": "les nombres entiers de {low} à {high}",
    "config_allowed_or": "{first} ou {last}",
    "config_quoted": "«\u00a0{value}\u00a0»",
    "config_access_members": "membres",
    "config_access_lobby": "salle d’attente",
    "config_access_guests": "invités",
    "config_widget_off": "désactivé",
    "config_widget_on": "activé",
    "config_widget_pinned": "épinglé",
    "config_transcription_off": "désactivée",
    "config_transcription_on": "activée",
    "config_rolled_back": (
        "Les réglages Visio ne peuvent être modifiés que par {level:roles}, et le niveau de {user} "
        "est {yours}\u00a0: les réglages précédents sont rétablis."
    ),
    "config_command_forbidden": (
        "Ce réglage ne peut être modifié que par {level:roles} (votre niveau\u00a0: {yours})."
    ),
    "bot_lacks_power": (
        "Je dois être {level:role} pour enregistrer les réglages Visio de ce salon. Un "
        "administrateur du salon peut me donner ce niveau."
    ),
    "bot_lacks_widget_power": (
        "Je dois être {level:role} pour ajouter la visio comme widget dans ce salon. Un "
        "administrateur du salon peut me donner ce niveau."
    ),
    "config_capped": (
        "Ce serveur limite les visios à {cap} personnes\u00a0: la limite demandée ({asked}) ne "
        "s’appliquera pas au-delà."
    ),
    "transcription_not_allowed": (
        "La transcription est désactivée sur ce serveur\u00a0: le réglage est enregistré, mais il "
        "n’aura pas d’effet."
    ),
    "config_usage": (
        "Syntaxe\u00a0: !visio réglages <nom> <valeur>, où <nom> est l’un des réglages "
        "suivants\u00a0: {fields}."
    ),
    "yes": "oui",
    "no": "non",
    "role_all": "tous les membres du salon",
    "roles_moderators": "les modérateurs (niveau {level})",
    "roles_admins": "les administrateurs (niveau {level})",
    "roles_level": "les membres de niveau {level} ou plus",
    "role_moderator": "modérateur (niveau {level})",
    "role_admin": "administrateur (niveau {level})",
    "role_level": "de niveau {level}",
    "time_of_day": "{hours}\u00a0h\u00a0{minutes:02d}",
    "widget_signing_in": "Connexion avec votre compte Tchap…",
    "widget_joining": "Connexion à la visio…",
    "widget_refused": (
        "Votre client a refusé de confirmer votre identité\u00a0: vous ne pouvez pas rejoindre la "
        "visio."
    ),
    "widget_not_member": "Vous n’êtes pas membre du salon de cette visio.",
    "widget_unauthorized": "Votre identité n’a pas pu être vérifiée.",
    "widget_limited": "Trop de tentatives\u00a0: réessayez dans quelques secondes.",
    "widget_failed": "La connexion à la visio a échoué.",
    "guest_name": "{name} (personne invitée)",
    "recording_started": (
        "🔴 Le son de cette visio est enregistré pour en produire la transcription, qui sera "
        "publiée ici après la visio. Pour arrêter l’enregistrement, tapez !visio transcription "
        "arrêt."
    ),
    "recording_stopped": (
        "L’enregistrement est arrêté\u00a0: il n’y aura pas de transcription pour cette visio."
    ),
    "recording_nothing": "Aucun enregistrement n’est en cours.",
    "recording_failed": (
        "L’enregistrement de la visio a échoué\u00a0: il n’y aura pas de transcription."
    ),
    "transcript_summary": (
        "Transcription de la visio ({duration}) — {speakers}\u00a0: {times} — {words} mots. Le "
        "texte complet est en pièces jointes (Markdown et WebVTT)."
    ),
    "transcript_empty": "Transcription de la visio\u00a0: aucune parole n’a été détectée.",
    "transcript_failed": "La transcription de la visio a échoué. (référence {ref})",
    "speaker_unknown": "Voix {n}",
    "speaker_voice": "{name} — voix {n}",
    "transcript_languages": "Langues entendues\u00a0: {languages}.",
    "transcript_gaps": "Audio manquant (enregistrement interrompu)\u00a0: {spans}.",
    "gap_span": "de {start} à {end}",
    "gap_line": "[audio manquant de {start} à {end}\u00a0: enregistrement interrompu]",
    "undecryptable": (
        "Je n’ai pas pu déchiffrer le message de {user}\u00a0: votre appareil ne m’a pas transmis "
        "ses clés. Renvoyez le message, ou vérifiez les sessions de votre compte."
    ),
    "encryption_off": (
        "Ce salon est chiffré, et le chiffrement n’est pas activé sur ce pont\u00a0: je ne peux "
        "pas lire les commandes envoyées ici. Demandez à l’administrateur du pont d’activer le "
        "chiffrement (encryption.enabled), ou utilisez un salon non chiffré."
    ),
    "chat_line": "{name}\u00a0: {text}",
    "chat_emote": "* {name} {text}",
    "chat_deleted": "(message supprimé)",
    "lobby_waiting": (
        "{guest} demande à entrer dans la visio\u00a0: ✅ pour accepter, ⛔ pour refuser."
    ),
    "lobby_admitted": "L’entrée de {guest} dans la visio a été acceptée par {member}.",
    "lobby_refused": "L’entrée de {guest} dans la visio a été refusée par {member}.",
    "lobby_expired": "{guest} a demandé à entrer dans la visio, mais personne n’a répondu à temps.",
    "lobby_ended": "{guest} a demandé à entrer dans la visio, mais la visio s’est terminée avant.",
    "page_lobby_title": "Salle d’attente",
    "page_lobby_waiting": "Un membre du salon va vous faire entrer. Gardez cette page ouverte.",
    "page_lobby_refused": "Votre demande pour rejoindre la visio a été refusée.",
    "page_lobby_expired": "Personne n’a répondu à temps. Vous pouvez réessayer.",
    "page_lobby_ended": "La visio est terminée.",
    "page_members_only_title": "Visio réservée aux membres",
    "page_members_only": (
        "Cette visio est réservée aux membres du salon. Rejoignez-la depuis le salon, dans Tchap."
    ),
    "unknown_command": "Commande inconnue\u00a0: «\u00a0{command}\u00a0».",
    "duration_minutes": "{minutes}\u00a0min",
    "duration_hours": "{hours}\u00a0h\u00a0{minutes:02d}",
    "duration_under_minute": "moins d’une minute",
    "page_title": "Rejoindre la visio",
    "page_intro": "Visio du salon, démarrée par {starter}.",
    "page_intro_named": "Visio du salon «\u00a0{room}\u00a0», démarrée par {starter}.",
    "page_members_hint": (
        "Vous êtes membre du salon\u202f? Ouvrez la visio depuis le salon, dans Tchap (widget "
        "Visio)\u00a0: vous entrerez avec votre compte, sans avoir à donner votre nom."
    ),
    "page_recording": (
        "🔴 Cette visio est enregistrée\u00a0: le son est transcrit, et la transcription (qui a "
        "dit quoi, sous le nom affiché dans la visio) sera publiée dans le salon après la visio."
    ),
    "page_name_label": "Votre nom",
    "page_join": "Rejoindre",
    "page_name_invalid": "Indiquez un nom (64 caractères au plus).",
    "page_not_found_title": "Visio introuvable",
    "page_not_found": "Ce lien ne correspond à aucune visio. Vérifiez l’adresse.",
    "page_ended_title": "Visio terminée",
    "page_ended": (
        "Cette visio est terminée. Pour en obtenir une nouvelle, demandez un lien dans le salon "
        "(commande !visio)."
    ),
    "callpage_other_language": "English",
    "callpage_legal_notice": "Mentions légales",
    "callpage_personal_data": "Données personnelles",
    "callpage_accessibility": "Accessibilité\u00a0: non conforme",
    "callpage_member_intro": "Vous rejoignez la visio avec votre compte Tchap.",
}

EN: Final = {
    "started": "Video call started by {starter} — join: {link}",
    "already_live": "A video call is already running (started by {starter}) — join: {link}",
    "in_call": (
        "Video call in progress, started by {starter} at {time} — {people}: {names} — join: {link}"
    ),
    "ended_by": "Video call ended by {ender} — {duration}, {people}.",
    "ended_alone": "Video call ended — {duration}, {people}.",
    "people": "{count} participant",
    "people_plural": "{count} participants",
    "speakers": "{count} speaker",
    "speakers_plural": "{count} speakers",
    "and_more": "+{count} more",
    "status_live": "Video call running for {duration}, started by {starter} — join: {link}",
    "status_none": "No video call running. Type !visio to start one.",
    "nothing_to_end": "There is no video call to end.",
    "end_forbidden": (
        "Only the person who started the call ({starter}) or {level:roles} can end it."
    ),
    "livekit_down": (
        "The video call could not be created: the video server is not answering. Try again in a "
        "few minutes. (reference {ref})"
    ),
    "livekit_refused": (
        "The video call could not be created: the video server refused the request. (reference "
        "{ref})"
    ),
    "end_failed": (
        "The video call could not be ended: the video server is not answering. Try again. "
        "(reference {ref})"
    ),
    "internal_error": "Something unexpected went wrong. (reference {ref})",
    "hello": (
        "Hello! To start a video call in this room, type !visio (or /visio). To see the other "
        "commands, type !visio help."
    ),
    "help": (
        "Visio commands:\n"
        "• !visio — start a video call (or get the link of the running one)\n"
        "• !visio status — is a call running?\n"
        "• !visio end — end the call (its starter or a moderator)\n"
        "• !visio config — see or change the room's settings\n"
        "• !visio transcript off — stop recording the current call\n"
        "• !visio help — this help\n"
        "In Element or Tchap, /visio opens “Unknown command”: choose “Send as message”, or type "
        "!visio."
    ),
    "disabled_here": (
        "Video calls are turned off in this room. To turn them back on, an admin of the room can "
        "type !visio config enabled yes"
    ),
    "start_forbidden": (
        "In this room, only {level:roles} can start a video call (your power level: {yours})."
    ),
    "config_title": "Visio settings of this room:",
    "config_footer": "To change a setting: !visio config <setting> <value>",
    "config_default": "server default",
    "config_operator_cap": "server limit: {cap}",
    "config_operator_off": "turned off on this server",
    "config_changed": "Setting “{field}” saved.",
    "config_invalid": (
        "Visio settings refused: the setting “{field}” {problem}. The previous settings stay in "
        "force."
    ),
    "config_invalid_content": (
        "Visio settings refused: the event must hold a list of settings, each with its value. The "
        "previous settings stay in force."
    ),
    "config_problem_unknown_field": "does not exist (settings: {allowed})",
    "config_problem_wrong_type": "only takes {allowed}",
    "config_problem_not_allowed": "only takes {allowed}",
    "config_problem_out_of_range": "only takes {allowed}",
    "config_allowed_range": "whole numbers from {low} to {high}",
    "config_allowed_or": "{first} or {last}",
    "config_quoted": "“{value}”",
    "config_access_members": "members",
    "config_access_lobby": "lobby",
    "config_access_guests": "guests",
    "config_widget_off": "off",
    "config_widget_on": "on",
    "config_widget_pinned": "pinned",
    "config_transcription_off": "off",
    "config_transcription_on": "on",
    "config_rolled_back": (
        "Only {level:roles} can change the Visio settings, and {user}'s power level is {yours}: "
        "the previous settings are restored."
    ),
    "config_command_forbidden": (
        "Only {level:roles} can change this setting (your power level: {yours})."
    ),
    "bot_lacks_power": (
        "I need to be {level:role} to save this room's Visio settings. An admin of the room can "
        "give me that level."
    ),
    "bot_lacks_widget_power": (
        "I need to be {level:role} to add the call as a widget in this room. An admin of the room "
        "can give me that level."
    ),
    "config_capped": (
        "This server limits calls to {cap} participants: the limit asked for ({asked}) will not "
        "apply beyond that."
    ),
    "transcription_not_allowed": (
        "Transcription is turned off on this server: the setting is saved but has no effect."
    ),
    "config_usage": "Usage: !visio config <setting> <value>, where <setting> is one of: {fields}.",
    "yes": "yes",
    "no": "no",
    "role_all": "all members of the room",
    "roles_moderators": "moderators (power level {level})",
    "roles_admins": "admins (power level {level})",
    "roles_level": "members with power level {level} or more",
    "role_moderator": "a moderator (power level {level})",
    "role_admin": "an admin (power level {level})",
    "role_level": "at power level {level}",
    "time_of_day": "{hours}:{minutes:02d}",
    "widget_signing_in": "Signing in with your Matrix account…",
    "widget_joining": "Joining the video call…",
    "widget_refused": "Your client declined to confirm who you are: you cannot join the call.",
    "widget_not_member": "You are not a member of this call's room.",
    "widget_unauthorized": "Your identity could not be verified.",
    "widget_limited": "Too many attempts: try again in a few seconds.",
    "widget_failed": "Joining the video call failed.",
    "guest_name": "{name} (guest)",
    "recording_started": (
        "🔴 This call's audio is recorded to produce its transcript, which will be posted here "
        "after the call. To stop recording, type !visio transcript off."
    ),
    "recording_stopped": "Recording stopped: no transcript for this call.",
    "recording_nothing": "Nothing is being recorded.",
    "recording_failed": "Recording the call failed: there will be no transcript.",
    "transcript_summary": (
        "Transcript of the call ({duration}) — {speakers}: {times} — {words} words. The full text "
        "is attached (Markdown and WebVTT)."
    ),
    "transcript_empty": "Transcript of the call: no speech was detected.",
    "transcript_failed": "Transcribing the call failed. (reference {ref})",
    "speaker_unknown": "Speaker {n}",
    "speaker_voice": "{name} — voice {n}",
    "transcript_languages": "Languages heard: {languages}.",
    "transcript_gaps": "Audio missing (recording interrupted): {spans}.",
    "gap_span": "from {start} to {end}",
    "gap_line": "[audio missing from {start} to {end}: recording interrupted]",
    "undecryptable": (
        "I could not decrypt {user}'s message: their device did not share its keys with me. Send "
        "it again, or check your account's sessions."
    ),
    "encryption_off": (
        "This room is encrypted, and encryption is not turned on in this bridge: I cannot read "
        "commands sent here. Ask the bridge's operator to turn encryption on (encryption.enabled), "
        "or use an unencrypted room."
    ),
    "chat_line": "{name}: {text}",
    "chat_emote": "* {name} {text}",
    "chat_deleted": "(message deleted)",
    "lobby_waiting": "{guest} is asking to join the call: ✅ to let them in, ⛔ to refuse.",
    "lobby_admitted": "{guest} was let into the call by {member}.",
    "lobby_refused": "{guest} was not let into the call (refused by {member}).",
    "lobby_expired": "{guest} asked to join the call, but nobody answered in time.",
    "lobby_ended": "{guest} asked to join the call, but the call ended first.",
    "page_lobby_title": "Waiting room",
    "page_lobby_waiting": "A member of the room will let you in. Keep this page open.",
    "page_lobby_refused": "Your request to join the call was refused.",
    "page_lobby_expired": "Nobody answered in time. You can try again.",
    "page_lobby_ended": "The call has ended.",
    "page_members_only_title": "Members only",
    "page_members_only": (
        "This video call is for the room's members only. Join it from the room, in Tchap."
    ),
    "unknown_command": "Unknown command: “{command}”.",
    "duration_minutes": "{minutes} min",
    "duration_hours": "{hours} h {minutes:02d}",
    "duration_under_minute": "less than a minute",
    "page_title": "Join the video call",
    "page_intro": "The room's video call, started by {starter}.",
    "page_intro_named": "The video call of “{room}”, started by {starter}.",
    "page_members_hint": (
        "A member of the room? Open the call from the room, in your Matrix client (the Visio "
        "widget): you join with your account, no name needed."
    ),
    "page_recording": (
        "🔴 This call is recorded: its audio is transcribed, and the transcript (who said what, "
        "under the name shown in the call) will be posted in the room after the call."
    ),
    "page_name_label": "Your name",
    "page_join": "Join",
    "page_name_invalid": "Enter a name (at most 64 characters).",
    "page_not_found_title": "Video call not found",
    "page_not_found": "This link does not match any video call. Check the address.",
    "page_ended_title": "Video call ended",
    "page_ended": (
        "This video call has ended. To get a new one, ask for a link in the room (command !visio)."
    ),
    "callpage_other_language": "Français",
    "callpage_legal_notice": "Legal notice",
    "callpage_personal_data": "Personal data",
    "callpage_accessibility": "Accessibility: not compliant",
    "callpage_member_intro": "You join the call with your Tchap account.",
}

CATALOGUES: Final = {"fr": FR, "en": EN}

# Languages a transcript may report hearing (Whisper's codes), named in each catalogue's language;
# a code missing here is shown as it is.
LANGUAGE_NAMES: Final = {
    "fr": {
        "fr": "français", "en": "anglais", "de": "allemand", "es": "espagnol", "it": "italien",
        "nl": "néerlandais", "pt": "portugais", "ar": "arabe", "br": "breton", "ca": "catalan",
        "eu": "basque", "oc": "occitan", "pl": "polonais", "ro": "roumain", "ru": "russe",
        "tr": "turc", "uk": "ukrainien", "zh": "chinois",
    },
    "en": {
        "fr": "French", "en": "English", "de": "German", "es": "Spanish", "it": "Italian",
        "nl": "Dutch", "pt": "Portuguese", "ar": "Arabic", "br": "Breton", "ca": "Catalan",
        "eu": "Basque", "oc": "Occitan", "pl": "Polish", "ro": "Romanian", "ru": "Russian",
        "tr": "Turkish", "uk": "Ukrainian", "zh": "Chinese",
    },
}  # fmt: skip


def language_name(language: str, code: str) -> str:
    return LANGUAGE_NAMES.get(language, LANGUAGE_NAMES["fr"]).get(code, code)


# Power levels that have a name in Matrix clients (Element, Tchap): 50 moderator, 100 admin.
MODERATOR_LEVEL = 50
ADMIN_LEVEL = 100


def is_plural(language: str, count: int) -> bool:
    # French counts 0 and 1 as singular ("0 personne"); English only 1.
    return count > 1 if language == "fr" else count != 1


def number(language: str, value: int) -> str:
    """An integer as people read it: « 10 000 » (narrow no-break space) in French, 10,000."""
    grouped = f"{value:,}"
    return grouped.replace(",", "\u202f") if language == "fr" else grouped


def roles(language: str, level: int) -> str:
    """Who holds at least `level`, as a plural noun phrase: « les modérateurs (niveau 50) »."""
    if level <= 0:
        return text(language, "role_all")
    if level == MODERATOR_LEVEL:
        return text(language, "roles_moderators", level=level)
    if level == ADMIN_LEVEL:
        return text(language, "roles_admins", level=level)
    return text(language, "roles_level", level=level)


def role(language: str, level: int) -> str:
    """What one must be to hold `level`, after « être » / "to be": « modérateur (niveau 50) »."""
    if level == MODERATOR_LEVEL:
        return text(language, "role_moderator", level=level)
    if level == ADMIN_LEVEL:
        return text(language, "role_admin", level=level)
    return text(language, "role_level", level=level)


class _Formatter(string.Formatter):
    """`str.format` plus what the catalogue needs: integers grouped for the language (`{count}`
    gives « 10 000 »), and `{level:roles}` / `{level:role}` naming a power level in words."""

    def __init__(self, language: str) -> None:
        super().__init__()
        self.language = language

    def format_field(self, value: Any, format_spec: str) -> Any:
        if isinstance(value, int) and not isinstance(value, bool):
            if format_spec == "roles":
                return roles(self.language, value)
            if format_spec == "role":
                return role(self.language, value)
            if format_spec == "":
                return number(self.language, value)
        return super().format_field(value, format_spec)


def fill(language: str, template: str, **fields: object) -> str:
    """Fill a catalogue template (or one derived from it, such as its HTML-escaped form)."""
    return _Formatter(language if language in CATALOGUES else "fr").format(template, **fields)


def text(language: str, key: str, **fields: object) -> str:
    catalogue = CATALOGUES.get(language, FR)
    return fill(language, catalogue[key], **fields)
