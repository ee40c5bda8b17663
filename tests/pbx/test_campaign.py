"""Campaign files: TOML and CSV, all-or-nothing loading, every problem named."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.pbx.campaign import Campaign, CampaignError, load_campaign

HEAD = """\
name = "renewals-nov"
caller_id = "+862161234567"
queue = "sales"
"""
ENTRY = """
[[number]]
number = "{number}"
name = "{name}"
"""


def write(tmp_path: Path, text: str, name: str = "renewals.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def toml(
    tmp_path: Path, head: str = HEAD, numbers: tuple[str, ...] = ("+86 21 6123 4568",)
) -> Path:
    body = "".join(ENTRY.format(number=n, name=f"Callee {i}") for i, n in enumerate(numbers, 1))
    return write(tmp_path, head + body)


def problem(path: Path, **kwargs: object) -> CampaignError:
    with pytest.raises(CampaignError) as info:
        load_campaign(path, **kwargs)  # type: ignore[arg-type]
    err = info.value
    assert str(err).startswith(f"{path.name}: "), str(err)
    return err


# --- success ---------------------------------------------------------------------------------


def test_toml_campaign_with_every_setting(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        HEAD
        + 'ring_limit = 4\nmax_ratio = 2.5\nauthorisation = "1234"\n'
        + ENTRY.format(number="+86 21 6123 4568", name="Li Wei")
        + ENTRY.format(number="138 0013 8000", name="王芳"),
    )
    c = load_campaign(path)
    assert isinstance(c, Campaign)
    assert (c.name, c.caller_id, c.queue) == ("renewals-nov", "+862161234567", "sales")
    assert (c.ring_limit, c.max_ratio, c.authorisation) == (4, 2.5, "1234")
    assert [(n.number, n.e164, n.name, n.where) for n in c.numbers] == [
        ("+86 21 6123 4568", "+862161234568", "Li Wei", "entry 1"),
        ("138 0013 8000", "+8613800138000", "王芳", "entry 2"),
    ]
    assert c.source == "renewals.toml"
    assert "authorisation" not in repr(c)  # the code is a secret


def test_toml_defaults_six_rings_seed_003(tmp_path: Path) -> None:
    c = load_campaign(toml(tmp_path))
    assert c.ring_limit == 6
    assert c.max_ratio == 3.0
    assert c.authorisation is None


def test_integer_max_ratio_is_a_number(tmp_path: Path) -> None:
    assert load_campaign(toml(tmp_path, HEAD + "max_ratio = 2\n")).max_ratio == 2.0


def test_national_caller_id_is_normalised(tmp_path: Path) -> None:
    head = HEAD.replace('"+862161234567"', '"021 6123 4567"')
    assert load_campaign(toml(tmp_path, head)).caller_id == "+862161234567"


def test_csv_campaign_takes_settings_from_arguments(tmp_path: Path) -> None:
    path = tmp_path / "nov-leads.csv"
    # A spreadsheet's BOM, CRLF line ends, a quoted name with a comma, a blank line.
    path.write_bytes(
        '\ufeffnumber,name\r\n+86 21 6123 4568,Li Wei\r\n\r\n13800138000,"Wang, Fang"\r\n'
        "(021) 6123-4569,\r\n".encode()
    )
    c = load_campaign(path, caller_id="+862161234567", queue="sales", authorisation="99")
    assert c.name == "nov-leads"  # the file's stem when no name is passed
    assert (c.caller_id, c.queue, c.ring_limit, c.authorisation) == (
        "+862161234567",
        "sales",
        6,
        "99",
    )
    assert [(n.e164, n.name, n.where) for n in c.numbers] == [
        ("+862161234568", "Li Wei", "line 2"),
        ("+8613800138000", "Wang, Fang", "line 4"),
        ("+862161234569", "", "line 5"),
    ]


def test_csv_with_number_column_only_and_explicit_name(tmp_path: Path) -> None:
    path = write(tmp_path, "number\n13800138000\n", "x.csv")
    c = load_campaign(path, name="leads_2", caller_id="+862161234567", queue="q1", ring_limit=3)
    assert (c.name, c.ring_limit, [n.name for n in c.numbers]) == ("leads_2", 3, [""])


def test_argument_fills_a_key_the_toml_file_lacks(tmp_path: Path) -> None:
    head = HEAD.replace('queue = "sales"\n', "")
    assert load_campaign(toml(tmp_path, head), queue="support").queue == "support"
    # The same value twice is not a conflict.
    assert load_campaign(toml(tmp_path, head), queue="support", name="renewals-nov").name == (
        "renewals-nov"
    )


def test_region_reads_national_numbers(tmp_path: Path) -> None:
    path = write(tmp_path, "number,name\n(201) 555-0123,Ann\n", "us.csv")
    c = load_campaign(path, caller_id="+1 201 555 0100", queue="sales", region="US")
    assert c.numbers[0].e164 == "+12015550123"


# --- problems --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("head", "expected"),
    [
        (HEAD + "ringlimit = 4\n", "unknown key 'ringlimit'"),
        (HEAD.replace('caller_id = "+862161234567"\n', ""), "caller_id is missing or empty"),
        (HEAD.replace('"+862161234567"', '"  "'), "caller_id is missing or empty"),
        (HEAD.replace('"+862161234567"', '"12"'), "caller_id '12' is not a valid phone number"),
        (HEAD.replace('"+862161234567"', "862161234567"), "caller_id must be a string"),
        (HEAD.replace('"renewals-nov"', '"renewals nov"'), "name 'renewals nov' must be 1-64"),
        (HEAD.replace('"renewals-nov"', '"' + "a" * 65 + '"'), "must be 1-64 of A-Z"),
        (HEAD.replace('name = "renewals-nov"\n', ""), "name is missing"),
        (HEAD.replace('queue = "sales"\n', ""), "queue is missing"),
        (HEAD.replace('"sales"', '"sales/#"'), "queue 'sales/#' must be 1-64"),
        (HEAD + "ring_limit = 11\n", "ring_limit 11 is outside 1..10"),
        (HEAD + "ring_limit = 0\n", "ring_limit 0 is outside 1..10"),
        (HEAD + "ring_limit = 6.5\n", "ring_limit must be a whole number of rings"),
        (HEAD + "ring_limit = true\n", "ring_limit must be a whole number of rings"),
        (HEAD + "max_ratio = 0.5\n", "max_ratio 0.5 is outside 1.0..5.0"),
        (HEAD + "max_ratio = 5.5\n", "max_ratio 5.5 is outside 1.0..5.0"),
        (HEAD + "max_ratio = nan\n", "max_ratio nan is outside"),
        (HEAD + 'max_ratio = "3"\n', "max_ratio must be a number"),
        (HEAD + 'authorisation = ""\n', "authorisation must be a quoted string"),
    ],
)
def test_setting_problems(tmp_path: Path, head: str, expected: str) -> None:
    err = problem(toml(tmp_path, head))
    assert expected in str(err)
    assert len(err.problems) == 1, err.problems


def test_missing_caller_id_cites_the_seed(tmp_path: Path) -> None:
    err = problem(toml(tmp_path, HEAD.replace('caller_id = "+862161234567"\n', "")))
    assert "seed 000 TCPA 1" in str(err)


def test_authorisation_problem_never_echoes_the_code(tmp_path: Path) -> None:
    err = problem(toml(tmp_path, HEAD + "authorisation = 987654\n"))
    assert "authorisation must be a quoted string" in str(err)
    assert "987654" not in str(err)


def test_duplicate_numbers_after_normalising(tmp_path: Path) -> None:
    path = toml(tmp_path, numbers=("+86 21 6123 4568", "13800138000", "021-6123 4568"))
    err = problem(path)
    assert "entry 3: '021-6123 4568' is +862161234568, a duplicate of entry 1" in str(err)


def test_number_that_does_not_parse(tmp_path: Path) -> None:
    err = problem(toml(tmp_path, numbers=("+86 21 6123 4568", "call me", "12")))
    assert err.problems == (
        "entry 2: 'call me' is not a valid phone number (region CN)",
        "entry 3: '12' is not a valid phone number (region CN)",
    )
    assert str(err).startswith("renewals.toml: 2 problems: entry 2: 'call me'")


@pytest.mark.parametrize(
    ("entries", "expected"),
    [
        ('[[number]]\nname = "Li"\n', "entry 1: number is missing"),
        ('[[number]]\nnumber = ""\n', "entry 1: number is missing"),
        ("[[number]]\nnumber = 862161234568\n", "entry 1: number must be a quoted string"),
        ('[[number]]\nnumber = "13800138000"\nname = 5\n', "entry 1 (13800138000): name must"),
        (
            '[[number]]\nnumber = "13800138000"\nphone = "x"\nnote = "y"\n',
            "entry 1: unknown keys 'note', 'phone' (known: number, name)",
        ),
        ('[[number]]\nnumber = "13800138000"\nname = "' + "x" * 201 + '"\n', "longer than 200"),
        ('number = "13800138000"\n', "'number' must be an array of tables"),
        ("", "no numbers: a campaign needs at least one"),
    ],
)
def test_entry_problems(tmp_path: Path, entries: str, expected: str) -> None:
    assert expected in str(problem(write(tmp_path, HEAD + entries)))


def test_every_problem_is_listed_and_nothing_is_returned(tmp_path: Path) -> None:
    head = HEAD.replace('"sales"', '"a b"').replace('caller_id = "+862161234567"\n', "")
    err = problem(toml(tmp_path, head + "colour = 1\n", ("x", "13800138000", "138 0013 8000")))
    text = str(err)
    assert text.startswith("renewals.toml: 5 problems: ")
    for part in ("unknown key 'colour'", "caller_id is missing", "queue 'a b'", "entry 1: 'x'",
                 "entry 3: '138 0013 8000' is +8613800138000, a duplicate of entry 2"):  # fmt: skip
        assert part in text


def test_long_problem_lists_are_shortened(tmp_path: Path) -> None:
    err = problem(toml(tmp_path, numbers=tuple(f"bad{i}" for i in range(25))))
    assert len(err.problems) == 25
    assert str(err).endswith("; ... and 5 more")


def test_toml_syntax_error_gives_the_line(tmp_path: Path) -> None:
    err = problem(write(tmp_path, HEAD + "max_ratio = \n"))
    assert "not valid TOML" in str(err) and "line 4" in str(err)


def test_conflicting_argument_and_file_value(tmp_path: Path) -> None:
    err = problem(toml(tmp_path), queue="support")
    assert "queue is 'sales' in the file but 'support' was passed" in str(err)
    err = problem(toml(tmp_path, HEAD + 'authorisation = "1357"\n'), authorisation="2468")
    assert "authorisation in the file differs from the one passed" in str(err)
    assert "1357" not in str(err) and "2468" not in str(err)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", "the file is empty"),
        ("number,name\n", "no numbers"),
        ("phone,name\n13800138000,Li\n", "line 1: header must be 'number,name', got 'phone,name'"),
        ("number,name\n13800138000,Li,extra\n", "line 2: 3 fields, the header has 2"),
        ("number,name\n13800138000\n", "line 2: 1 field, the header has 2"),
        ("number,name\n13800138000,Li\n138-0013-8000,Wang\n", "line 3: '138-0013-8000' is +86"),
        ("number,name\n13800138000,Li\nabc,Wang\n", "line 3: 'abc' is not a valid phone number"),
    ],
)
def test_csv_problems(tmp_path: Path, text: str, expected: str) -> None:
    path = write(tmp_path, text, "leads.csv")
    assert expected in str(problem(path, caller_id="+862161234567", queue="sales"))


def test_csv_needs_caller_id_and_queue_from_arguments(tmp_path: Path) -> None:
    err = problem(write(tmp_path, "number,name\n13800138000,Li\n", "leads.csv"))
    assert "caller_id is missing or empty" in str(err) and "queue is missing" in str(err)


def test_csv_name_from_a_bad_stem(tmp_path: Path) -> None:
    path = write(tmp_path, "number,name\n13800138000,Li\n", "nov leads.csv")
    err = problem(path, caller_id="+862161234567", queue="sales")
    assert "name 'nov leads' must be 1-64" in str(err)


def test_csv_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "gbk.csv"
    path.write_bytes("number,name\n13800138000,王芳\n".encode("gbk"))
    err = problem(path, caller_id="+862161234567", queue="sales")
    assert "not UTF-8 text" in str(err) and "CSV UTF-8" in str(err)


def test_unknown_file_type(tmp_path: Path) -> None:
    err = problem(write(tmp_path, "number\n13800138000\n", "leads.xlsx"))
    assert "unknown file type '.xlsx'" in str(err)


def test_campaign_error_is_a_value_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="caller_id"):
        load_campaign(toml(tmp_path, HEAD.replace('"+862161234567"', '""')))
