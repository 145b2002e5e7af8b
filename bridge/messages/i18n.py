"""Message catalogue, French and English; French by default, for French civil servants.

Texts are format strings; `{name}`-style fields are filled by `bridge/messages/render.py`, which
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
    "speakers": "{count} intervenant",
    "speakers_plural": "{count} intervenants",
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
        "• !visio config — voir ou changer les réglages du salon\n"
        "• !visio transcript off — arrêter l'enregistrement de la visio en cours\n"
        "• !visio help — cette aide\n"
        "Dans Element ou Tchap, /visio ouvre « Commande inconnue » : choisissez "
        "« Envoyer comme message », ou tapez !visio."
    ),
    "disabled_here": (
        "Visio est désactivée dans ce salon. Un administrateur peut la réactiver : "
        "!visio config enabled true"
    ),
    "start_forbidden": (
        "Il faut un niveau de pouvoir d'au moins {level} pour démarrer une visio dans ce salon "
        "(le vôtre : {yours})."
    ),
    "config_title": "Réglages Visio de ce salon :",
    "config_footer": "Modifier : !visio config <réglage> <valeur>",
    "config_default": "défaut du serveur",
    "config_operator_cap": "limite du serveur : {cap}",
    "config_operator_off": "désactivée sur ce serveur",
    "config_changed": "Réglage « {field} » enregistré.",
    "config_invalid": (
        "Réglages Visio refusés : « {field} » — {problem}. Valeurs possibles : {allowed}. "
        "Les réglages précédents restent en vigueur."
    ),
    "config_problem_unknown_field": "réglage inconnu",
    "config_problem_wrong_type": "type de valeur incorrect",
    "config_problem_not_allowed": "valeur non permise",
    "config_problem_out_of_range": "valeur hors limites",
    "config_problem_not_object": "le contenu doit être un objet JSON",
    "config_rolled_back": (
        "{user} n'a pas le niveau de pouvoir requis ({level}) pour modifier les réglages Visio "
        "(le sien : {yours}) ; les réglages précédents sont rétablis."
    ),
    "config_command_forbidden": (
        "Il faut un niveau de pouvoir d'au moins {level} pour modifier ce réglage "
        "(le vôtre : {yours})."
    ),
    "bot_lacks_power": (
        "Je n'ai pas le niveau de pouvoir nécessaire ({level}) pour écrire les réglages Visio "
        "de ce salon. Un administrateur peut me le donner."
    ),
    "bot_lacks_widget_power": (
        "Je n'ai pas le niveau de pouvoir nécessaire ({level}) pour ajouter la visio comme "
        "widget dans ce salon. Un administrateur peut me le donner."
    ),
    "config_capped": (
        "Ce serveur limite les visios à {cap} participants : la limite demandée ({asked}) "
        "ne s'appliquera pas au-delà."
    ),
    "transcription_not_allowed": (
        "La transcription est désactivée sur ce serveur : "
        "le réglage est enregistré mais sans effet."
    ),
    "config_usage": "Usage : !visio config <réglage> <valeur> (réglages : {fields})",
    "yes": "oui",
    "no": "non",
    "widget_signing_in": "Connexion avec votre compte Tchap…",
    "widget_joining": "Connexion à la visio…",
    "widget_refused": (
        "Votre client a refusé de confirmer votre identité : impossible de rejoindre."
    ),
    "widget_not_member": "Vous n'êtes pas membre du salon de cette visio.",
    "widget_unauthorized": "Votre identité n'a pas pu être vérifiée.",
    "widget_limited": "Trop de tentatives : réessayez dans quelques secondes.",
    "widget_failed": "La connexion à la visio a échoué.",
    "guest_name": "{name} (invité)",
    "recording_started": (
        "🔴 Le son de cette visio est enregistré pour en produire la transcription, publiée ici "
        "après la visio. !visio transcript off pour arrêter."
    ),
    "recording_stopped": "L'enregistrement est arrêté : pas de transcription pour cette visio.",
    "recording_nothing": "Aucun enregistrement en cours.",
    "recording_failed": (
        "L'enregistrement de la visio a échoué : il n'y aura pas de transcription."
    ),
    "transcript_summary": (
        "Transcription de la visio ({duration}) — {speakers} : {times} — {words} mots. "
        "Texte complet en pièce jointe."
    ),
    "transcript_empty": "Transcription de la visio : aucune parole n'a été détectée.",
    "transcript_failed": "La transcription de la visio a échoué. (référence {ref})",
    "speaker_unknown": "Intervenant {n}",
    "undecryptable": (
        "Je n'ai pas pu déchiffrer le message de {user} : votre appareil ne m'a pas partagé "
        "ses clés. Renvoyez-le, ou vérifiez les sessions de votre compte."
    ),
    "encryption_off": (
        "Ce salon est chiffré, et le chiffrement n'est pas activé sur ce pont : je ne peux pas "
        "lire les commandes envoyées ici. Demandez à l'administrateur du pont d'activer le "
        "chiffrement (encryption.enabled), ou utilisez un salon non chiffré."
    ),
    "chat_line": "{name} : {text}",
    "chat_emote": "* {name} {text}",
    "chat_deleted": "(message supprimé)",
    "lobby_waiting": "{guest} attend l'entrée de la visio — ✅ pour l'admettre, ⛔ pour refuser.",
    "lobby_admitted": "{guest} a été admis dans la visio par {member}.",
    "lobby_refused": "{guest} n'a pas été admis dans la visio (refusé par {member}).",
    "lobby_expired": "{guest} attendait l'entrée de la visio ; personne n'a répondu à temps.",
    "lobby_ended": "{guest} attendait l'entrée de la visio ; la visio s'est terminée avant.",
    "page_lobby_title": "Salle d'attente",
    "page_lobby_waiting": "Un membre du salon va vous faire entrer. Gardez cette page ouverte.",
    "page_lobby_refused": "Votre demande pour rejoindre la visio a été refusée.",
    "page_lobby_expired": "Personne n'a répondu à temps. Vous pouvez réessayer.",
    "page_lobby_ended": "La visio est terminée.",
    "page_members_only_title": "Visio réservée aux membres",
    "page_members_only": (
        "Cette visio est réservée aux membres du salon. Rejoignez-la depuis le salon, dans Tchap."
    ),
    "unknown_command": "Commande inconnue : « {command} ».",
    "duration_minutes": "{minutes} min",
    "duration_hours": "{hours} h {minutes:02d}",
    "duration_under_minute": "moins d'une minute",
    # Join page
    "page_title": "Rejoindre la visio",
    "page_intro": "Visio du salon, démarrée par {starter}.",
    "page_members_hint": (
        "Membre du salon ? Ouvrez la visio depuis le salon, dans Tchap (widget Visio) : "
        "vous entrez avec votre compte, sans donner de nom."
    ),
    "page_recording": (
        "🔴 Cette visio est enregistrée : le son est transcrit, et la transcription (qui a dit "
        "quoi, sous le nom affiché dans la visio) sera publiée dans le salon après la visio."
    ),
    "page_name_label": "Votre nom",
    "page_join": "Rejoindre",
    "page_name_invalid": "Indiquez un nom (64 caractères au plus).",
    "page_not_found_title": "Visio introuvable",
    "page_not_found": "Ce lien ne correspond à aucune visio. Vérifiez l'adresse.",
    "page_ended_title": "Visio terminée",
    "page_ended": "Cette visio est terminée. Demandez un nouveau lien dans le salon (!visio).",
    "callpage_other_language": "English",
    "callpage_legal_notice": "Mentions légales",
    "callpage_personal_data": "Données personnelles",
    "callpage_accessibility": "Accessibilité : non conforme",
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
        "• !visio config — see or change the room's settings\n"
        "• !visio transcript off — stop recording the current call\n"
        "• !visio help — this help\n"
        "In Element or Tchap, /visio opens “Unknown command”: choose “Send as message”, "
        "or type !visio."
    ),
    "disabled_here": (
        "Visio is turned off in this room. An admin can turn it back on: !visio config enabled true"
    ),
    "start_forbidden": (
        "Starting a video call in this room needs power level {level} (yours: {yours})."
    ),
    "config_title": "Visio settings of this room:",
    "config_footer": "Change: !visio config <setting> <value>",
    "config_default": "server default",
    "config_operator_cap": "server limit: {cap}",
    "config_operator_off": "turned off on this server",
    "config_changed": "Setting “{field}” saved.",
    "config_invalid": (
        "Visio settings refused: “{field}” — {problem}. Allowed: {allowed}. "
        "The previous settings stay in force."
    ),
    "config_problem_unknown_field": "unknown setting",
    "config_problem_wrong_type": "wrong type of value",
    "config_problem_not_allowed": "value not allowed",
    "config_problem_out_of_range": "value out of range",
    "config_problem_not_object": "the content must be a JSON object",
    "config_rolled_back": (
        "{user} lacks the power level needed ({level}) to change the Visio settings "
        "(theirs: {yours}); the previous settings are restored."
    ),
    "config_command_forbidden": (
        "Changing this setting needs power level {level} (yours: {yours})."
    ),
    "bot_lacks_power": (
        "I lack the power level needed ({level}) to write this room's Visio settings. "
        "An admin can give it to me."
    ),
    "bot_lacks_widget_power": (
        "I lack the power level needed ({level}) to add the call as a widget in this room. "
        "An admin can give it to me."
    ),
    "config_capped": (
        "This server limits calls to {cap} participants: the limit asked for ({asked}) "
        "will not apply beyond that."
    ),
    "transcription_not_allowed": (
        "Transcription is turned off on this server: the setting is saved but has no effect."
    ),
    "config_usage": "Usage: !visio config <setting> <value> (settings: {fields})",
    "yes": "yes",
    "no": "no",
    "widget_signing_in": "Signing in with your Matrix account…",
    "widget_joining": "Joining the video call…",
    "widget_refused": "Your client declined to confirm who you are: cannot join.",
    "widget_not_member": "You are not a member of this call's room.",
    "widget_unauthorized": "Your identity could not be verified.",
    "widget_limited": "Too many attempts: try again in a few seconds.",
    "widget_failed": "Joining the video call failed.",
    "guest_name": "{name} (guest)",
    "recording_started": (
        "🔴 This call's audio is recorded to produce its transcript, posted here after the "
        "call. !visio transcript off to stop."
    ),
    "recording_stopped": "Recording stopped: no transcript for this call.",
    "recording_nothing": "Nothing is being recorded.",
    "recording_failed": "Recording the call failed: there will be no transcript.",
    "transcript_summary": (
        "Transcript of the call ({duration}) — {speakers}: {times} — {words} words. "
        "Full text attached."
    ),
    "transcript_empty": "Transcript of the call: no speech was detected.",
    "transcript_failed": "Transcribing the call failed. (reference {ref})",
    "speaker_unknown": "Speaker {n}",
    "undecryptable": (
        "I could not decrypt {user}'s message: their device did not share its keys with me. "
        "Send it again, or check your account's sessions."
    ),
    "encryption_off": (
        "This room is encrypted, and encryption is not turned on in this bridge: I cannot read "
        "commands sent here. Ask the bridge's operator to turn encryption on "
        "(encryption.enabled), or use an unencrypted room."
    ),
    "chat_line": "{name}: {text}",
    "chat_emote": "* {name} {text}",
    "chat_deleted": "(message deleted)",
    "lobby_waiting": "{guest} is waiting to join the call — ✅ to let them in, ⛔ to refuse.",
    "lobby_admitted": "{guest} was let into the call by {member}.",
    "lobby_refused": "{guest} was not let into the call (refused by {member}).",
    "lobby_expired": "{guest} was waiting to join the call; nobody answered in time.",
    "lobby_ended": "{guest} was waiting to join the call; the call ended first.",
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
    "page_ended": "This video call has ended. Ask for a new link in the room (!visio).",
    "callpage_other_language": "Français",
    "callpage_legal_notice": "Legal notice",
    "callpage_personal_data": "Personal data",
    "callpage_accessibility": "Accessibility: not compliant",
    "callpage_member_intro": "You join the call with your Tchap account.",
}

CATALOGUES: Final = {"fr": FR, "en": EN}


def is_plural(language: str, count: int) -> bool:
    # French counts 0 and 1 as singular ("0 participant"); English only 1.
    return count > 1 if language == "fr" else count != 1


def text(language: str, key: str, **fields: object) -> str:
    catalogue = CATALOGUES.get(language, FR)
    return catalogue[key].format(**fields)
