"""Who said what, with hand-made turns and words (no models): attribution and rendering."""

from __future__ import annotations

from bridge.transcription.attribution import (
    Presence,
    Turn,
    Utterance,
    Word,
    label_words,
    name_labels,
    speaking_time,
    utterances,
    without_loops,
)
from bridge.transcription.render import markdown, webvtt

TURNS = [Turn(0.0, 4.0, "SPEAKER_00"), Turn(4.2, 8.0, "SPEAKER_01"), Turn(8.5, 10.0, "SPEAKER_02")]
WORDS = [
    Word(0.1, 0.5, "Bonjour"),
    Word(0.6, 1.0, "à"),
    Word(1.1, 1.6, "tous."),
    Word(3.95, 4.4, "Oui,"),  # straddles the boundary: mostly inside SPEAKER_01
    Word(4.4, 5.0, "bonjour."),
    Word(8.2, 8.45, "Euh"),  # in a gap, nearest turn is SPEAKER_02
    Word(8.6, 9.0, "moi"),
    Word(12.0, 12.4, "perdu"),  # far from any turn
]


def test_words_go_to_the_turn_they_overlap_most_or_the_nearest() -> None:
    assert label_words(WORDS, TURNS) == [
        "SPEAKER_00",
        "SPEAKER_00",
        "SPEAKER_00",
        "SPEAKER_01",
        "SPEAKER_01",
        "SPEAKER_02",
        "SPEAKER_02",
        None,
    ]


def test_labels_are_named_only_when_presence_tells_them_apart() -> None:
    presences = [
        Presence("Alice", 0.0, 10.0),  # there all along
        Presence("Bob", 4.0, 10.0),  # joined at 4 s
        Presence("Zoé", 8.4, 10.0),
    ]
    names = name_labels(TURNS, presences)
    # SPEAKER_00 spoke before Bob and Zoé came: only Alice was there.
    assert names["SPEAKER_00"] == "Alice"
    # SPEAKER_01 and SPEAKER_02: several people present throughout, no guess.
    assert "SPEAKER_01" not in names and "SPEAKER_02" not in names


def test_several_labels_of_one_person_merge_and_others_are_numbered() -> None:
    turns = [Turn(0, 2, "SPEAKER_00"), Turn(2, 4, "SPEAKER_03"), Turn(4, 6, "SPEAKER_01")]
    words = [Word(0.5, 1, "un"), Word(2.5, 3, "deux"), Word(4.5, 5, "trois")]
    names = {"SPEAKER_00": "Alice", "SPEAKER_03": "Alice"}
    result = utterances(words, label_words(words, turns), names, "Intervenant {n}")
    assert result == [
        Utterance("Alice", 0.5, 3, "un deux"),
        Utterance("Intervenant 1", 4.5, 5, "trois"),
    ]
    assert speaking_time(result) == {"Alice": 2.5, "Intervenant 1": 0.5}


def test_known_hallucinations_are_dropped() -> None:
    words = [Word(0, 1, "Sous-titres réalisés par la communauté d'Amara.org"), Word(5, 6, "Vrai")]
    turns = [Turn(0, 1, "A"), Turn(5, 6, "B")]
    result = utterances(words, label_words(words, turns), {}, "Speaker {n}")
    assert [u.text for u in result] == ["Vrai"]


def test_markdown_and_webvtt() -> None:
    items = [
        Utterance("Alice", 0.5, 3.25, "Bonjour à tous."),
        Utterance("Bob <admin>", 3661.0, 3662.5, "a --> b & <c>"),
    ]
    assert markdown(items) == (
        "**Alice** [00:00:00]: Bonjour à tous.\n\n**Bob <admin>** [01:01:01]: a --> b & <c>\n"
    )
    assert webvtt(items) == (
        "WEBVTT\n\n"
        "00:00:00.500 --> 00:00:03.250\n<v Alice>Bonjour à tous.\n\n"
        "01:01:01.000 --> 01:01:02.500\n<v Bob &lt;admin&gt;>a → b &amp; &lt;c>\n"
    )


# ---------------------------------------------------------------- defects real recordings showed


def test_a_word_without_duration_goes_to_the_turn_it_lies_in() -> None:
    # Whisper gives many words start == end. Inside a long turn, such a word overlaps nothing
    # and lay 10 s from the turn's edges: it went to no speaker and became "Intervenant 3".
    turns = [Turn(0.0, 20.0, "SPEAKER_00"), Turn(20.5, 30.0, "SPEAKER_01")]
    words = [Word(9.0, 9.6, "and"), Word(10.0, 10.0, "the"), Word(25.0, 25.0, "end")]
    assert label_words(words, turns) == ["SPEAKER_00", "SPEAKER_00", "SPEAKER_01"]


def test_a_word_no_turn_claims_joins_its_neighbours_speaker() -> None:
    words = [Word(0, 1, "un"), Word(1, 2, "deux"), Word(2, 3, "trois"), Word(3, 4, "quatre")]
    labels: list[str | None] = [None, "A", None, "B"]
    result = utterances(words, labels, {}, "Intervenant {n}")
    assert [u.speaker for u in result] == ["Intervenant 1", "Intervenant 2"]
    assert [u.text for u in result] == ["un deux trois", "quatre"]


def test_a_monologue_is_cut_into_utterances_of_bounded_length() -> None:
    # One speaker for 40 s without a pause: one 40 s paragraph before, now several.
    words = [Word(i * 0.5, i * 0.5 + 0.4, "mot") for i in range(80)]
    result = utterances(words, ["A"] * len(words), {"A": "Alice"}, "Intervenant {n}")
    assert len(result) >= 2
    assert all(u.end - u.start <= 25.0 for u in result)
    assert sum(len(u.text.split()) for u in result) == 80


def test_speech_after_a_hallucinated_phrase_is_kept() -> None:
    # A subtitle credit at the start of a long utterance took the whole utterance with it.
    said = "Sous-titrage ST' 501 bonjour à tous nous allons parler du budget de l'année prochaine"
    words = [Word(i, i + 0.5, text) for i, text in enumerate(said.split())]
    result = utterances(words, ["A"] * len(words), {}, "Intervenant {n}")
    assert "budget" in " ".join(u.text for u in result)


def test_words_whisper_cut_at_an_apostrophe_or_hyphen_are_written_back_together() -> None:
    words = [Word(0, 1, "l'"), Word(1, 2, "équipe"), Word(2, 3, "peut"), Word(3, 4, "-on"),
             Word(4, 5, "m"), Word(5, 6, "'a"), Word(6, 7, "dit.")]  # fmt: skip
    assert [u.text for u in utterances(words, ["A"] * 7, {}, "S{n}")] == [
        "l'équipe peut-on m'a dit."
    ]


def test_a_phrase_whisper_says_three_times_over_is_kept_once() -> None:
    looped = "Good morning everyone. Good morning everyone. Good morning everyone. Then".split()
    words = [Word(float(n), n + 0.5, text) for n, text in enumerate(looped)]
    assert [w.text for w in without_loops(words)] == ["Good", "morning", "everyone.", "Then"]
    # What people do say twice, or a word over and over, stays.
    for said in ("we will we will see", "non, non, non, non", "thank you thank you"):
        words = [Word(float(n), n + 0.5, text) for n, text in enumerate(said.split())]
        assert [w.text for w in without_loops(words)] == said.split()
