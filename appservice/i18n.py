"""Message catalogue, French and English; French by default, for French civil servants.

Texts are format strings; `{name}`-style fields are filled by `appservice/render.py`, which
escapes them for HTML. Keep both languages in step: a test checks that their keys match.
"""

from __future__ import annotations

from typing import Final

FR: Final = {
    "started": "Visio démarrée par {starter} — rejoindre : {link}",
    "already_live": "Une visio est déjà en cours (démarrée par {starter}) — rejoindre : {link}",
    "in_call": (
        "Visio en cours, démarrée par {starter} à {time} — {people} : {names} — rejoindre : {link}"
    ),
    "ended_by": "Visio terminée par {ender} — {duration}, {people}.",
    "ended_alone": "Visio terminée — {duration}, {people}.",
    "people": "{count} participant",
    "people_plural": "{count} participants",
    "and_more": "+{count} autres",
    "status_live": "Visio en cours depuis {duration}, démarrée par {starter} — rejoindre : {link}",
    "status_none": "Aucune visio en cours. Tapez !visio pour en démarrer une.",
    "nothing_to_end": "Aucune visio en cours à terminer.",
    "end_forbidden": (
        "Seule la personne qui a démarré la visio ({starter}) ou un modérateur "
        "(niveau de pouvoir {level}) peut la terminer."
    ),
    "livekit_down": (
        "La visio n'a pas pu être créée : le serveur de visioconférence ne répond pas. "
        "Réessayez dans quelques minutes. (référence {ref})"
    ),
    "livekit_refused": (
        "La visio n'a pas pu être créée : le serveur de visioconférence a refusé la demande. "
        "(référence {ref})"
    ),
    "end_failed": (
        "La visio n'a pas pu être terminée : le serveur de visioconférence ne répond pas. "
        "Réessayez. (référence {ref})"
    ),
    "internal_error": "Une erreur inattendue s'est produite. (référence {ref})",
    "hello": (
        "Bonjour ! Tapez !visio (ou /visio) pour démarrer une visioconférence dans ce salon. "
        "!visio aide pour les autres commandes."
    ),
    "help": (
        "Commandes Visio :\n"
        "• !visio — démarrer une visio (ou obtenir le lien de celle en cours)\n"
        "• !visio status — savoir si une visio est en cours\n"
        "• !visio end — terminer la visio (la personne qui l'a démarrée ou un modérateur)\n"
        "• !visio help — cette aide\n"
        "Dans Element ou Tchap, /visio ouvre « Commande inconnue » : choisissez "
        "« Envoyer comme message », ou tapez !visio."
    ),
    "unknown_command": "Commande inconnue : « {command} ».",
    "duration_minutes": "{minutes} min",
    "duration_hours": "{hours} h {minutes:02d}",
    "duration_under_minute": "moins d'une minute",
    # Join page
    "page_title": "Rejoindre la visio",
    "page_intro": "Visio du salon, démarrée par {starter}.",
    "page_name_label": "Votre nom",
    "page_join": "Rejoindre",
    "page_name_invalid": "Indiquez un nom (64 caractères au plus).",
    "page_not_found_title": "Visio introuvable",
    "page_not_found": "Ce lien ne correspond à aucune visio. Vérifiez l'adresse.",
    "page_ended_title": "Visio terminée",
    "page_ended": "Cette visio est terminée. Demandez un nouveau lien dans le salon (!visio).",
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
    "and_more": "+{count} more",
    "status_live": "Video call running for {duration}, started by {starter} — join: {link}",
    "status_none": "No video call running. Type !visio to start one.",
    "nothing_to_end": "There is no video call to end.",
    "end_forbidden": (
        "Only the person who started the call ({starter}) or a moderator "
        "(power level {level}) can end it."
    ),
    "livekit_down": (
        "The video call could not be created: the video server is not answering. "
        "Try again in a few minutes. (reference {ref})"
    ),
    "livekit_refused": (
        "The video call could not be created: the video server refused the request. "
        "(reference {ref})"
    ),
    "end_failed": (
        "The video call could not be ended: the video server is not answering. "
        "Try again. (reference {ref})"
    ),
    "internal_error": "Something unexpected went wrong. (reference {ref})",
    "hello": (
        "Hello! Type !visio (or /visio) to start a video call in this room. "
        "!visio help lists the other commands."
    ),
    "help": (
        "Visio commands:\n"
        "• !visio — start a video call (or get the link of the running one)\n"
        "• !visio status — is a call running?\n"
        "• !visio end — end the call (its starter or a moderator)\n"
        "• !visio help — this help\n"
        "In Element or Tchap, /visio opens “Unknown command”: choose “Send as message”, "
        "or type !visio."
    ),
    "unknown_command": "Unknown command: “{command}”.",
    "duration_minutes": "{minutes} min",
    "duration_hours": "{hours} h {minutes:02d}",
    "duration_under_minute": "less than a minute",
    "page_title": "Join the video call",
    "page_intro": "The room's video call, started by {starter}.",
    "page_name_label": "Your name",
    "page_join": "Join",
    "page_name_invalid": "Enter a name (at most 64 characters).",
    "page_not_found_title": "Video call not found",
    "page_not_found": "This link does not match any video call. Check the address.",
    "page_ended_title": "Video call ended",
    "page_ended": "This video call has ended. Ask for a new link in the room (!visio).",
}

CATALOGUES: Final = {"fr": FR, "en": EN}


def is_plural(language: str, count: int) -> bool:
    # French counts 0 and 1 as singular ("0 participant"); English only 1.
    return count > 1 if language == "fr" else count != 1


def text(language: str, key: str, **fields: object) -> str:
    catalogue = CATALOGUES.get(language, FR)
    return catalogue[key].format(**fields)
