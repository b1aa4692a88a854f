import pytest

from cer_hf import taxonomy
from cer_hf.taxonomy import EMOTION_BASICS, compound_from_basics, constituents, multi_hot, parse_label


@pytest.mark.parametrize(
    "written, canonical",
    [
        ("happy", "Happiness"),
        ("Happiness", "Happiness"),
        ("HAPPY", "Happiness"),
        (" sad ", "Sadness"),
        ("Angry", "Anger"),
        ("surprised", "Surprise"),
        ("Happily_Surprised", "Happily Surprised"),
        ("happily surprised", "Happily Surprised"),
        ("Sadness|Fear", "Sadly Fearful"),
        ("fear+sadness", "Sadly Fearful"),
        ("Surprise-Disgust", "Disgustedly Surprised"),
        ("Fearfully_Angry", "Fearfully Angry"),
        ("contempt", "Contempt"),
    ],
)
def test_parse_label_accepts_common_spellings(written, canonical):
    assert parse_label(written) == canonical


@pytest.mark.parametrize("bad", ["joyful", "", "Happiness|Neutral", "Happy|Fear", 3, None])
def test_parse_label_rejects_unknown_labels_naming_them(bad):
    with pytest.raises(ValueError) as error:
        parse_label(bad)
    message = str(error.value)
    assert repr(bad) in message
    assert "Happiness" in message and "Sadly Angry" in message  # lists the accepted labels


def test_compound_sets_have_the_documented_order_and_constituents():
    abaw7 = taxonomy.compound_set("abaw7")
    assert [c.name for c in abaw7] == [
        "Fearfully Surprised", "Happily Surprised", "Sadly Surprised", "Disgustedly Surprised",
        "Angrily Surprised", "Sadly Fearful", "Sadly Angry",
    ]
    rafdb = taxonomy.compound_set("rafdb")
    assert len(rafdb) == 11
    assert rafdb[0].name == "Happily Surprised" and rafdb[10].name == "Disgustedly Surprised"
    for classes in (abaw7, rafdb):
        for compound in classes:
            assert len(set(compound.constituents)) == 2
            assert set(compound.constituents) <= set(EMOTION_BASICS)
    with pytest.raises(ValueError, match="unknown compound set 'ferplus'.*abaw7"):
        taxonomy.compound_set("ferplus")


def test_constituents_and_multi_hot():
    assert constituents("Sadly Angry") == ("Sadness", "Anger")
    assert constituents("happy") == ("Happiness",)
    assert multi_hot("Sadly_Angry", EMOTION_BASICS) == [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]
    assert multi_hot("Fear", EMOTION_BASICS) == [0.0, 0.0, 1.0, 0.0, 0.0, 0.0]
    with pytest.raises(ValueError, match="Neutral"):
        multi_hot("Neutral", EMOTION_BASICS)


def test_compound_from_basics():
    assert compound_from_basics("Fear", "Surprise") == "Fearfully Surprised"
    assert compound_from_basics("surprise", "fear") == "Fearfully Surprised"
    assert compound_from_basics("Happiness", "Fear") is None
