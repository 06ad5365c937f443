"""simulator.scoring: exact LTI values, their text, and the LTI 1.1 / 1.3 messages."""

from __future__ import annotations

import json
import math
import xml.etree.ElementTree as ET
from decimal import Decimal
from fractions import Fraction

import pytest
from hypothesis import given, settings, strategies as st

from simulator import scoring
from simulator.scoring import (LTI11_NS, ags_score, json_number, lti_string, percentage_lti,
                               ratio_lti, replace_result_xml)

D = Decimal
NS = {"x": LTI11_NS}


def oracle(value: Fraction) -> str:
    """HALF_UP to 6 decimals, computed with integers only (independent of Decimal)."""
    micro = (value * 1_000_000 * 2 + 1) // 2  # floor(x + 1/2) for x >= 0
    whole, frac = divmod(int(micro), 1_000_000)
    text = f"{frac:06d}".rstrip("0") or "0"
    return f"{whole}.{text}"


# --- exactness: Decimal, never float -------------------------------------------------

def test_float_would_be_wrong_but_decimal_is_exact():
    assert 0.1 + 0.2 != 0.3  # why floats are never used
    value, clamped = ratio_lti(D("0.1") + D("0.2"), D("1"))
    assert value == D("0.3") and not clamped
    assert lti_string(value) == "0.3"


@pytest.mark.parametrize("given_, maximum, expected", [
    (D("0.3"), 1, "0.3"),
    (1, 3, "0.333333"),
    (2, 3, "0.666667"),
    (8, 10, "0.8"),
    (0, 10, "0.0"),
    (10, 10, "1.0"),
    (D("7.5"), D("10"), "0.75"),
    (1, 7, "0.142857"),
    (5, 7, "0.714286"),
    (D("0.1"), D("0.3"), "0.333333"),
    (D("1E-7"), 1, "0.0"),
    (D("5E-7"), 1, "0.000001"),          # exactly half a millionth rounds UP
    (D("4.999999E-7"), 1, "0.0"),
    (D("0.0000015"), 1, "0.000002"),     # HALF_UP, not banker's rounding (would give 0.000002 too)
    (D("0.0000025"), 1, "0.000003"),     # banker's rounding would give 0.000002
    (D("0.9999995"), 1, "1.0"),
    (D("0.9999994"), 1, "0.999999"),
    (999_999_999_999_999, 1_000_000_000_000_000, "1.0"),
    (1, 1_000_000_000_000_000, "0.0"),
])
def test_ratio_to_lti_string(given_, maximum, expected):
    value, clamped = ratio_lti(given_, maximum)
    assert not clamped
    assert lti_string(value) == expected


@pytest.mark.parametrize("value, expected", [
    (0, "0.0"), (1, "1.0"), (D("0"), "0.0"), (D("1"), "1.0"), (D("1.000"), "1.0"),
    (D("0.8"), "0.8"), (D("0.80"), "0.8"), (D("0.30"), "0.3"), (D("0.123456"), "0.123456"),
    (D("0.1234565"), "0.123457"), (D("0.1234564999"), "0.123456"), (D("-0.0"), "0.0"),
    (D("0E-10"), "0.0"), (D("1E-999999999"), "0.0"), (D("0.5"), "0.5"),
])
def test_lti_string_table(value, expected):
    assert lti_string(value) == expected


@pytest.mark.parametrize("bad", [D("-0.1"), D("1.0000001"), 2, -1, D("NaN"), D("Infinity")])
def test_lti_string_refuses_values_outside_0_1(bad):
    with pytest.raises(ValueError):
        lti_string(bad)


@pytest.mark.parametrize("bad", [0.5, True, "0.5", None])
def test_lti_string_refuses_floats_and_non_numbers(bad):
    with pytest.raises(TypeError):
        lti_string(bad)


def test_percentage_is_the_lti_value_and_minus_zero_is_zero():
    assert percentage_lti(D("0.8")) == D("0.8")
    assert percentage_lti(1) == 1
    negative_zero = percentage_lti(D("-0.0"))
    assert negative_zero == 0 and not negative_zero.is_signed()


@pytest.mark.parametrize("given_, maximum", [
    (12, 10), (D("10.5"), 10), (D("1E+15"), D("1E-999999")), (D("1E+999999"), 1),
])
def test_extra_credit_is_clamped_without_dividing(given_, maximum):
    value, clamped = ratio_lti(given_, maximum)
    assert clamped and value == 1 and lti_string(value) == "1.0"


def test_equal_scores_are_not_clamped():
    assert ratio_lti(10, 10) == (1, False)


def test_tiny_ratio_underflows_to_zero_text():
    value, clamped = ratio_lti(D("1E-999999"), D("1E+15"))
    assert not clamped and lti_string(value) == "0.0"


@pytest.mark.parametrize("given_, maximum", [(1, 0), (1, -5), (-1, 10)])
def test_ratio_refuses_what_the_endpoint_refuses(given_, maximum):
    with pytest.raises(ValueError):
        ratio_lti(given_, maximum)


@settings(max_examples=200, deadline=None)
@given(st.fractions(min_value=0, max_value=1, max_denominator=10**12))
def test_lti_string_matches_integer_oracle(frac):
    value, clamped = ratio_lti(frac.numerator, frac.denominator)
    assert not clamped
    assert lti_string(value) == oracle(frac)


@settings(max_examples=200, deadline=None)
@given(st.decimals(min_value=0, max_value=1, allow_nan=False, allow_infinity=False))
def test_lti_string_of_any_decimal_in_range(value):
    assert lti_string(value) == oracle(Fraction(value))


@settings(max_examples=200, deadline=None)
@given(st.decimals(min_value=0, max_value=D("1E15"), allow_nan=False, allow_infinity=False),
       st.decimals(min_value=D("1E-30"), max_value=D("1E15"), allow_nan=False,
                   allow_infinity=False))
def test_ratio_matches_exact_fraction(given_, maximum):
    value, clamped = ratio_lti(given_, maximum)
    exact = Fraction(given_) / Fraction(maximum)
    assert clamped == (exact > 1)
    assert lti_string(value) == oracle(min(exact, Fraction(1)))


# --- numbers for JSON ----------------------------------------------------------------

@pytest.mark.parametrize("value, expected", [
    (8, 8), (D("8.0"), 8), (D("8"), 8), (D("1E+2"), 100), (D("0.8"), 0.8), (D("-0.0"), 0),
    (D("12.5"), 12.5), (D("1E+400"), "1E+400"), (10**30, 10**30),
])
def test_json_number(value, expected):
    out = json_number(value)
    assert out == expected and type(out) is type(expected)
    json.dumps(out, allow_nan=False)


def test_json_number_refuses_bool():
    with pytest.raises(TypeError):
        json_number(True)


# --- LTI 1.1 replaceResult -----------------------------------------------------------

def _parse_pox(xml: str) -> ET.Element:
    assert xml.startswith('<?xml version="1.0" encoding="UTF-8"?>')
    return ET.fromstring(xml.encode("utf-8"))


def test_replace_result_xml_shape():
    root = _parse_pox(replace_result_xml("src-1", "0.92", "msg-7"))
    assert root.tag == f"{{{LTI11_NS}}}imsx_POXEnvelopeRequest"
    info = root.find("x:imsx_POXHeader/x:imsx_POXRequestHeaderInfo", NS)
    assert info.find("x:imsx_version", NS).text == "V1.0"
    assert info.find("x:imsx_messageIdentifier", NS).text == "msg-7"
    record = root.find("x:imsx_POXBody/x:replaceResultRequest/x:resultRecord", NS)
    assert record.find("x:sourcedGUID/x:sourcedId", NS).text == "src-1"
    score = record.find("x:result/x:resultScore", NS)
    assert score.find("x:language", NS).text == "en"
    assert score.find("x:textString", NS).text == "0.92"
    # every element is in the LTI namespace, none outside it
    assert all(el.tag.startswith(f"{{{LTI11_NS}}}") for el in root.iter())


@pytest.mark.parametrize("sourced_id", [
    'a<b>&c"d\'e', "<script>alert(1)</script>", "]]>", "&amp;", "é🙂",
])
def test_replace_result_xml_escapes_sourced_id(sourced_id):
    xml = replace_result_xml(sourced_id, "0.5", "m<&>1")
    root = _parse_pox(xml)
    assert root.find(".//x:sourcedId", NS).text == sourced_id
    assert root.find(".//x:imsx_messageIdentifier", NS).text == "m<&>1"
    assert "<script>" not in xml


def test_replace_result_xml_replaces_characters_xml_cannot_carry():
    root = _parse_pox(replace_result_xml("a\x00b\x1fc\ud800d", "0.5", "m"))
    assert root.find(".//x:sourcedId", NS).text == "a\ufffdb\ufffdc\ufffdd"


@pytest.mark.parametrize("score", ["0.0", "1.0", "0.666667", "0", "1"])
def test_replace_result_xml_accepts_lti_range(score):
    root = _parse_pox(replace_result_xml("s", score, "m"))
    assert root.find(".//x:textString", NS).text == score


@pytest.mark.parametrize("score", ["1.1", "-0.1", "NaN", "Infinity", "abc", "", "80"])
def test_replace_result_xml_refuses_scores_outside_lti_range(score):
    with pytest.raises(ValueError):
        replace_result_xml("s", score, "m")


# --- LTI 1.3 AGS score ---------------------------------------------------------------

def test_ags_score_keys_and_values():
    out = ags_score("user-1", D("8"), 10, "2024-01-02T03:04:05.678Z", comment="Nice <b>work</b>")
    assert list(out) == ["userId", "scoreGiven", "scoreMaximum", "comment", "timestamp",
                         "activityProgress", "gradingProgress"]
    assert out == {"userId": "user-1", "scoreGiven": 8, "scoreMaximum": 10,
                   "comment": "Nice <b>work</b>", "timestamp": "2024-01-02T03:04:05.678Z",
                   "activityProgress": "Completed", "gradingProgress": "FullyGraded"}
    assert json.loads(json.dumps(out, allow_nan=False)) == out
    assert scoring.AGS_SCORE_MEDIA_TYPE == "application/vnd.ims.lis.v1.score+json"


def test_ags_score_without_comment_and_with_extra_credit():
    out = ags_score("u", D("12.5"), D("10"), "2024-01-02T03:04:05.000Z")
    assert "comment" not in out
    assert out["scoreGiven"] == 12.5 and out["scoreMaximum"] == 10  # AGS does not clamp


def test_ags_score_refuses_non_finite_floats():
    with pytest.raises(ValueError):
        ags_score("u", math.inf, 10, "t")


# --- rules pinned at their edges (each case kills a mutant that survived before) ---------

@pytest.mark.parametrize("value, expected", [
    (D("9999999999999999"), 9999999999999999),      # 16 digits: still an exact int
    (D("9999999999999999.0"), 9999999999999999),
    (D("1E+15"), 10**15),
    (D("1E+16"), 1e16),                               # 17 digits: a float, as JSON readers hold it
    (D("12345678901234567"), 12345678901234567.0),
    (D("-7"), -7), (D("0E+5"), 0), (D("0.000"), 0),
])
def test_json_number_writes_up_to_16_digits_as_int_and_longer_as_float(value, expected):
    out = json_number(value)
    assert out == expected and type(out) is type(expected)


@pytest.mark.parametrize("bad, error, message", [
    (True, TypeError, "booleans are not numbers here"),
    (D("NaN"), ValueError, "NaN is not a finite number"),
    (D("-Infinity"), ValueError, "-Infinity is not a finite number"),
    (0.5, TypeError, "expected int or Decimal, got float"),
])
def test_json_number_refusals_say_why(bad, error, message):
    with pytest.raises(error) as caught:
        json_number(bad)
    assert str(caught.value) == message


@pytest.mark.parametrize("call, message", [
    (lambda: ratio_lti(1, 0), "scoreMaximum must be > 0"),
    (lambda: ratio_lti(-1, 10), "scoreGiven must be >= 0"),
    (lambda: lti_string(D("1.5")), "LTI values are 0.0–1.0, got 1.5"),
    (lambda: lti_string(D("NaN")), "LTI values are 0.0–1.0, got NaN"),
    (lambda: replace_result_xml("s", "abc", "m"), "score must be a decimal string, got 'abc'"),
    (lambda: replace_result_xml("s", "1.1", "m"), "LTI 1.1 scores are 0.0–1.0, got '1.1'"),
    (lambda: ags_score("u", math.nan, 10, "t"), "AGS scores must be finite"),
    (lambda: ags_score("u", 1, math.inf, "t"), "AGS scores must be finite"),
])
def test_scoring_errors_name_the_rule(call, message):
    with pytest.raises(ValueError) as caught:
        call()
    assert str(caught.value) == message


def test_zero_score_given_is_zero_and_not_clamped():
    value, clamped = ratio_lti(0, D("1E-6"))
    assert value == 0 and value.is_zero() and not clamped


def test_ratio_just_above_maximum_is_clamped_and_just_below_is_not():
    assert ratio_lti(D("10.000001"), 10) == (1, True)
    value, clamped = ratio_lti(D("9.99999"), 10)
    assert not clamped and value == D("0.999999") and lti_string(value) == "0.999999"


@pytest.mark.parametrize("value, text", [(D("0"), "0.0"), (D("1"), "1.0"), (D("0.999999"), "0.999999")])
def test_lti_string_accepts_both_ends_of_0_to_1(value, text):
    assert lti_string(value) == text


def test_replace_result_xml_is_exactly_the_lti_11_pox_text():
    """The whole body, byte for byte: namespace URL, element order, indentation, declaration."""
    assert LTI11_NS == "http://www.imsglobal.org/services/ltiv1p1/xsd/imsoms_v1p0"
    assert replace_result_xml("src-1", "0.92", "msg-7") == (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<imsx_POXEnvelopeRequest xmlns="http://www.imsglobal.org/services/ltiv1p1/xsd/imsoms_v1p0">\n'
        '  <imsx_POXHeader>\n'
        '    <imsx_POXRequestHeaderInfo>\n'
        '      <imsx_version>V1.0</imsx_version>\n'
        '      <imsx_messageIdentifier>msg-7</imsx_messageIdentifier>\n'
        '    </imsx_POXRequestHeaderInfo>\n'
        '  </imsx_POXHeader>\n'
        '  <imsx_POXBody>\n'
        '    <replaceResultRequest>\n'
        '      <resultRecord>\n'
        '        <sourcedGUID>\n'
        '          <sourcedId>src-1</sourcedId>\n'
        '        </sourcedGUID>\n'
        '        <result>\n'
        '          <resultScore>\n'
        '            <language>en</language>\n'
        '            <textString>0.92</textString>\n'
        '          </resultScore>\n'
        '        </result>\n'
        '      </resultRecord>\n'
        '    </replaceResultRequest>\n'
        '  </imsx_POXBody>\n'
        '</imsx_POXEnvelopeRequest>\n')


@pytest.mark.parametrize("text", ["\t", "\n", "\r", " ", "\ud7ff", "\ue000", "\ufffd",
                                  "\U00010000", "\U0010ffff"])
def test_replace_result_xml_keeps_every_character_xml_allows(text):
    root = _parse_pox(replace_result_xml("a" + text + "b", "0.5", "m"))
    expected = "a" + text + "b"
    if text == "\r":
        expected = "a\nb"  # XML parsers normalise a literal CR in text to LF
    assert root.find(".//x:sourcedId", NS).text == expected


@pytest.mark.parametrize("text", ["\x08", "\x0b", "\x0c", "\x1f", "\ud800", "\udfff", "\ufffe",
                                  "\uffff"])
def test_replace_result_xml_replaces_each_forbidden_character(text):
    root = _parse_pox(replace_result_xml("a" + text + "b", "0.5", "m"))
    assert root.find(".//x:sourcedId", NS).text == "a\ufffdb"


def test_ags_score_keeps_finite_floats_as_they_are():
    out = ags_score("u", 7.5, 10.0, "t", comment="")
    assert out["scoreGiven"] == 7.5 and type(out["scoreGiven"]) is float
    assert out["comment"] == ""  # an empty comment is a comment; only None leaves it out


@pytest.mark.parametrize("value, expected", [
    (0, True), (-3, True), (D("1.5"), True), (D("-0"), True), (True, False), (False, False),
    (D("NaN"), False), (D("Infinity"), False), (1.5, False), ("1", False), (None, False),
])
def test_is_number_means_a_finite_json_number_and_never_a_boolean(value, expected):
    assert scoring.is_number(value) is expected


@pytest.mark.parametrize("value, text", [(12, "12"), (D("0.30"), "0.30"), (D("1E+2"), "1E+2"),
                                         (D("-0.0"), "-0.0")])
def test_number_text_keeps_the_digits_as_sent(value, text):
    assert scoring.number_text(value) == text


@pytest.mark.parametrize("value, message", [(True, "expected int or Decimal, got bool"),
                                            ("1", "expected int or Decimal, got str")])
def test_to_decimal_refuses_what_is_not_exact(value, message):
    with pytest.raises(TypeError) as caught:
        scoring.to_decimal(value)
    assert str(caught.value) == message
