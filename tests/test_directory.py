"""The agency and county directory as level 1 uses it: both shipped examples describe one
directory, look-ups find the right agency and contacts, and every problem in a file is named
with its file and key path (YAML) or line and column (CSV)."""

from __future__ import annotations

import ast
import textwrap
from pathlib import Path

import pytest

from mailticket.config.directory import csv_form as directory_module
from mailticket.config.directory import Agency, Answer, Contact, County, Directory, DirectoryError
from mailticket.errors import ConfigError

REPO = Path(__file__).resolve().parent.parent
EXAMPLE_YAML = REPO / "config" / "directory.example.yaml"
EXAMPLE_CSV = REPO / "config" / "directory.example.csv"
HEADER = "agency,code,county,domains,addresses,role,name,email,phone\n"


@pytest.fixture(scope="module")
def example() -> Directory:
    return Directory.load(EXAMPLE_YAML)


def problems_of(tmp_path: Path, name: str, text: str | bytes) -> list[str]:
    """The problems Directory.load reports for a file with this text, the path shown as ``name``."""
    path = tmp_path / name
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    with pytest.raises(DirectoryError) as caught:
        Directory.load(path)
    return [line.replace(str(path), name) for line in caught.value.problems]


def load_text(tmp_path: Path, name: str, text: str | bytes) -> Directory:
    path = tmp_path / name
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return Directory.load(path)


def names(answer: Answer) -> list[str]:
    return [a.name for a in answer.agencies]


# --- the shipped examples ----------------------------------------------------------------------

def test_both_example_files_describe_the_same_directory(example):
    from_csv = Directory.load(EXAMPLE_CSV)
    assert from_csv.agencies() == example.agencies()
    assert from_csv.counties() == example.counties()
    assert len(example.agencies()) == 8
    assert [c.name for c in example.counties()] == ["Logan", "Menard", "Sangamon"]


def test_the_example_keeps_what_the_admin_wrote(example):
    spd = example.whois("SPD").agencies[0]
    assert spd == Agency(
        name="Springfield Police Department", code="SPD", county="Sangamon",
        domains=("spd.example.gov",), addresses=("k.nguyen.spd@mail.example.org",),
        contacts=(Contact("sponsor", "Lt. Ray Okafor", "rokafor@spd.example.gov",
                          "+1 217 555 0110"),
                  Contact("JTAC", "Sgt. Lena Morales", "lmorales@spd.example.gov",
                          "+1 217 555 0111")))
    assert example.whois("Logan").county == County("Logan", ())  # named by an agency only


def docstring_examples() -> list[str]:
    """The indented blocks after '::' in the module docstring: the YAML example, then the CSV."""
    doc = ast.get_docstring(ast.parse(Path(directory_module.__file__).read_text()))
    blocks = []
    for part in doc.split("::\n\n")[1:]:
        lines = []
        for line in part.splitlines():
            if line and not line.startswith("    "):
                break
            lines.append(line)
        blocks.append(textwrap.dedent("\n".join(lines)).strip() + "\n")
    return blocks


def test_the_docstring_examples_load_and_agree(tmp_path):
    yaml_text, csv_text = docstring_examples()
    from_yaml = load_text(tmp_path, "d.yaml", yaml_text)
    from_csv = load_text(tmp_path, "d.csv", csv_text)
    assert from_yaml.agencies() == from_csv.agencies()
    assert from_yaml.counties() == from_csv.counties()
    assert [a.code for a in from_yaml.agencies()] == ["LPD", "SPD"]


# --- look-ups ----------------------------------------------------------------------------------

@pytest.mark.parametrize("address, agency", [
    ("rokafor@spd.example.gov", "Springfield Police Department"),
    ("ROKafor@SPD.Example.GOV", "Springfield Police Department"),          # any case
    ("ann@mail.spd.example.gov", "Springfield Police Department"),          # a subdomain
    ("k.nguyen.spd@mail.example.org", "Springfield Police Department"),     # a listed address
    ("clerk@sangamon.example.gov", "Sangamon County Clerk"),
    ("deputy@sheriff.sangamon.example.gov", "Sangamon County Sheriff's Office"),  # longest wins
    ("x@a.b.sheriff.sangamon.example.gov", "Sangamon County Sheriff's Office"),
    ("deputy.hale@state.example.gov", "Menard County Sheriff's Office"),    # on a shared domain
    ("someone@interop.state.example.gov", "State Interoperability Office"),
    ("someone.else@state.example.gov", None),                               # the shared domain
    ("ann@notspd.example.gov", None),                                       # not a subdomain
    ("ann@example.gov", None),
    ("ann@gov", None),
    ("not an address", None),
    ("", None),
])
def test_agency_of_an_address(example, address, agency):
    found = example.agency_of(address)
    assert (found.name if found else None) == agency


def test_an_exact_address_beats_the_domain_it_is_in(tmp_path):
    d = load_text(tmp_path, "d.yaml", """
agencies:
  - name: State Agency
    domains: [state.example.gov]
  - name: Local Agency
    addresses: [ann@state.example.gov]
""")
    assert d.agency_of("ann@state.example.gov").name == "Local Agency"
    assert d.agency_of("bob@state.example.gov").name == "State Agency"


def test_whois_an_address_gives_the_agency_then_its_county_contacts(example):
    answer = example.whois("ann@mail.spd.example.gov")
    assert answer.query == "ann@mail.spd.example.gov"
    assert names(answer) == ["Springfield Police Department"]
    assert answer.county.name == "Sangamon"
    assert [(c.role, c.name) for c in answer.contacts] == [
        ("sponsor", "Lt. Ray Okafor"), ("JTAC", "Sgt. Lena Morales"),
        ("registrar", "Dana Whitfield"), ("JTAC", "Marcus Bell")]
    assert [c.name for c in answer.by_role("jtac")] == ["Sgt. Lena Morales", "Marcus Bell"]
    assert answer.by_role("Registrar")[0].email == "registrar@sangamon.example.gov"
    assert not answer.ambiguous


@pytest.mark.parametrize("query, agency", [
    ("Springfield Police Department", "Springfield Police Department"),
    ("  springfield   POLICE department ", "Springfield Police Department"),
    ("spd", "Springfield Police Department"),
    ("SCSO", "Sangamon County Sheriff's Office"),
    ("springfield p", "Springfield Police Department"),       # the start of one name
    ("Sangamon County Sh", "Sangamon County Sheriff's Office"),
    ("Ann Lee <ann@spd.example.gov>", "Springfield Police Department"),
    ("@fire.springfield.example.gov", "Springfield Fire Department"),  # a domain on its own
])
def test_whois_an_agency(example, query, agency):
    answer = example.whois(query)
    assert names(answer) == [agency]
    assert answer.contacts[0] == answer.agencies[0].contacts[0]


def test_an_agency_with_no_county_has_only_its_own_contacts(example):
    answer = example.whois("State Interop")
    assert answer.county is None
    assert [c.name for c in answer.contacts] == ["Dr. Irene Kowalski", "Sam Whitfield"]


def test_an_ambiguous_prefix_lists_the_candidates_and_no_contacts(example):
    answer = example.whois("Springfield")
    assert answer.ambiguous
    assert names(answer) == ["Springfield Fire Department", "Springfield Police Department"]
    assert answer.county is None and answer.contacts == ()


@pytest.mark.parametrize("query", ["Sangamon", "sangamon county", "SANGAMON  County "])
def test_whois_a_county(example, query):
    answer = example.whois(query)
    assert answer.agencies == ()
    assert answer.county.name == "Sangamon"
    assert [c.name for c in answer.contacts] == ["Dana Whitfield", "Marcus Bell"]


def test_an_exact_agency_name_beats_a_county_and_a_county_beats_a_prefix(tmp_path):
    d = load_text(tmp_path, "d.yaml", """
agencies:
  - {name: Cook County, county: Cook}
  - {name: Cook County Sheriff, county: Cook}
  - {name: Cookeville Police}
counties:
  - name: Cook
    contacts: [{role: registrar, name: Ann}]
""")
    assert names(d.whois("cook county")) == ["Cook County"]
    assert d.whois("Cook").county.name == "Cook" and d.whois("Cook").agencies == ()
    assert names(d.whois("cooke")) == ["Cookeville Police"]


@pytest.mark.parametrize("query", ["", "   ", "nobody@example.net", "Chicago", "Spx", "@"])
def test_nothing_found(example, query):
    assert example.whois(query) == Answer(query, (), None, ())


def test_an_agency_contact_who_is_also_a_county_contact_is_listed_once(tmp_path):
    d = load_text(tmp_path, "d.yaml", """
counties:
  - name: Menard
    contacts:
      - {role: registrar, name: Priya Natarajan, phone: "555"}
agencies:
  - name: Petersburg Police
    county: Menard County
    contacts:
      - {role: Registrar, name: priya natarajan, email: p@example.gov}
""")
    answer = d.whois("Petersburg Police")
    assert answer.contacts == (Contact("Registrar", "priya natarajan", "p@example.gov", None),)
    assert answer.agencies[0].county == "Menard"  # the county's own spelling


# --- reading the formats -----------------------------------------------------------------------

def test_csv_from_excel_with_a_byte_order_mark_semicolons_and_blank_rows(tmp_path):
    text = ("\ufeffAgency;Name;Role;Domains;County\r\n"
            ";;;;\r\n"
            "Springfield Police Department;Lt. Ray Okafor;sponsor;spd.example.gov;Sangamon\r\n"
            "\r\n"
            ";Dana Whitfield;registrar;;Sangamon County\r\n")
    d = load_text(tmp_path, "d.csv", text.encode("utf-8"))
    assert d.agency_of("x@spd.example.gov").contacts[0].name == "Lt. Ray Okafor"
    # The county-level row's spelling is the county's name, whatever the agency rows say.
    assert d.counties() == (County("Sangamon County",
                                   (Contact("registrar", "Dana Whitfield", None, None),)),)
    assert d.agencies()[0].county == "Sangamon County"


def test_csv_agency_fields_may_be_given_once_and_domains_add_up(tmp_path):
    d = load_text(tmp_path, "d.csv", HEADER +
                  "SPD Records,,,spd.example.gov,,clerk,Ann,,\n"
                  "SPD Records,REC,Sangamon,\"records.example.gov;spd.example.gov\",,,,,\n"
                  "SPD Records,,,,a@mail.example.org b@mail.example.org,,,,\n")
    agency = d.agencies()[0]
    assert agency == Agency("SPD Records", "REC", "Sangamon",
                            ("spd.example.gov", "records.example.gov"),
                            ("a@mail.example.org", "b@mail.example.org"),
                            (Contact("clerk", "Ann", None, None),))


def test_yaml_domains_may_be_one_string(tmp_path):
    d = load_text(tmp_path, "d.yml",
                  "agencies:\n  - name: A\n    domains: a.example.gov, B.example.gov;\n")
    assert d.agencies()[0].domains == ("a.example.gov", "b.example.gov")


def test_a_directory_error_is_a_config_error(tmp_path):
    assert issubclass(DirectoryError, ConfigError)
    assert problems_of(tmp_path, "d.yaml", "") == ["d.yaml: lists no agencies and no counties"]
    assert problems_of(tmp_path, "d.csv", HEADER) == ["d.csv: lists no agencies and no counties"]


@pytest.mark.parametrize("name, content, expected", [
    ("d.txt", "", "d.txt: expected a .yaml, .yml or .csv file (the suffix says which format it "
                  "is in)"),
    # (PyYAML and libyaml word the reason differently)
    ("d.yaml", "agencies: [\n", "d.yaml, line 2, column 1: not valid YAML: "),
    ("d.yaml", "agencies:\n  - name: A\n    name: B\n",
     "d.yaml, line 3, column 5: not valid YAML: duplicate key 'name'"),
    ("d.yaml", "- name: A\n", "d.yaml: the top level must be a mapping with agencies and "
                              "counties, got a list"),
    ("d.csv", b"agency,role,name\nCaf\xe9,x,y\n",
     "d.csv, line 2: not UTF-8 text; save the file as UTF-8 (in Excel: CSV UTF-8)"),
    ("d.csv", 'agency,role,name\n"A,x,y\nB,x,y\n',
     "d.csv, line 2: not valid CSV: unexpected end of data"),  # where the open quote is
])
def test_unreadable_files(tmp_path, name, content, expected):
    [problem] = problems_of(tmp_path, name, content)
    assert problem.startswith(expected) and (problem == expected or expected.endswith(": "))


def test_a_missing_file(tmp_path):
    with pytest.raises(DirectoryError, match="d.yaml: no such directory file"):
        Directory.load(tmp_path / "d.yaml")


# --- every YAML problem, exactly as the admin reads it -----------------------------------------

YAML_CASES = [
    ("unknown keys", """
agency: []
agencies:
  - name: A
    domain: a.example.gov
    contacts: [{role: x, name: y, mail: a@example.gov}]
counties:
  - {name: C, registrar: Ann}
""", [
        "d.yaml: agency: unknown key (expected one of: agencies, counties)",
        "d.yaml: counties[0].registrar: unknown key (expected one of: name, contacts)",
        "d.yaml: agencies[0].domain: unknown key (expected one of: name, code, county, domains, "
        "addresses, contacts)",
        "d.yaml: agencies[0].contacts[0].mail: unknown key (expected one of: role, name, email, "
        "phone)",
    ]),
    ("missing names and roles", """
agencies:
  - code: A
    contacts: [{name: Ann}, {role: sponsor, name: "  "}]
counties:
  - contacts: []
""", [
        "d.yaml: counties[0].name: missing (required)",
        "d.yaml: agencies[0].name: missing (required)",
        "d.yaml: agencies[0].contacts[0].role: missing (required)",
        "d.yaml: agencies[0].contacts[1].name: missing (required)",
    ]),
    ("wrong shapes", """
agencies:
  - name: A
    domains: {a: b}
    contacts: {role: x, name: y}
  - just a name
counties: Sangamon
""", [
        "d.yaml: counties: expected a list of counties, got 'Sangamon'",
        "d.yaml: agencies[0].domains: expected a list of domains, got a mapping",
        "d.yaml: agencies[0].contacts: expected a list of contacts, got a mapping",
        "d.yaml: agencies[1]: expected a mapping, got 'just a name'",
    ]),
    ("bad domains", """
agencies:
  - name: A
    domains: [x y, "*.a.example.gov", ann@a.example.gov, localhost, 10.0.0.1, 42, -a.example.gov]
  - name: B
    domains: b.example.gov b_c.example.gov
""", [
        "d.yaml: agencies[0].domains[0]: expected a mail domain like example.org, got 'x y'",
        "d.yaml: agencies[0].domains[1]: expected a mail domain like example.org, got "
        "'*.a.example.gov' (subdomains match without '*.')",
        "d.yaml: agencies[0].domains[2]: expected a mail domain like example.org, got "
        "'ann@a.example.gov' (addresses go under addresses)",
        "d.yaml: agencies[0].domains[3]: expected a mail domain like example.org, got 'localhost'",
        "d.yaml: agencies[0].domains[4]: expected a mail domain like example.org, got '10.0.0.1'",
        "d.yaml: agencies[0].domains[5]: expected a mail domain like example.org, got 42",
        "d.yaml: agencies[0].domains[6]: expected a mail domain like example.org, got "
        "'-a.example.gov'",
        "d.yaml: agencies[1].domains: expected a mail domain like example.org, "
        "got 'b_c.example.gov'",
    ]),
    ("bad addresses and emails", """
agencies:
  - name: A
    addresses: [a.example.gov, "ann@", "a b@example.gov", ann..lee@example.gov, "x@y@example.gov"]
    contacts:
      - {role: sponsor, name: Ann, email: ann at example.gov}
      - {role: JTAC, name: Bob, email: "Bob <bob@example.gov>"}
""", [
        "d.yaml: agencies[0].addresses[0]: expected an email address like ann@example.org, got "
        "'a.example.gov' (domains go under domains)",
        "d.yaml: agencies[0].addresses[1]: expected an email address like ann@example.org, "
        "got 'ann@'",
        "d.yaml: agencies[0].addresses[2]: expected an email address like ann@example.org, "
        "got 'a b@example.gov'",
        "d.yaml: agencies[0].addresses[3]: expected an email address like ann@example.org, "
        "got 'ann..lee@example.gov'",
        "d.yaml: agencies[0].addresses[4]: expected an email address like ann@example.org, "
        "got 'x@y@example.gov'",
        "d.yaml: agencies[0].contacts[0].email: expected an email address like ann@example.org, "
        "got 'ann at example.gov'",
        "d.yaml: agencies[0].contacts[1].email: expected an email address like ann@example.org, "
        "got 'Bob <bob@example.gov>'",
    ]),
    ("numbers YAML has already changed", """
agencies:
  - name: A
    code: 007
    county: no
    contacts: [{role: sponsor, name: Ann, phone: 02175550142}]
""", [
        "d.yaml: agencies[0].code: expected text, but YAML read the number 7 (put it in quotes)",
        "d.yaml: agencies[0].county: expected text, but YAML read false (put it in quotes)",
        # 0217... is an octal number to YAML
        "d.yaml: agencies[0].contacts[0].phone: expected text, but YAML read the number "
        "301387874 (put it in quotes)",
    ]),
    ("names, codes and lookups that could never work", """
agencies:
  - {name: "desk@example.gov", code: S P D}
  - {name: B, code: "a@b"}
counties:
  - {name: "x@y"}
""", [
        "d.yaml: counties[0].name: a name cannot contain '@', got 'x@y'",
        "d.yaml: agencies[0].name: a name cannot contain '@', got 'desk@example.gov'",
        "d.yaml: agencies[0].code: expected a short code like SPD (at most 32 characters, "
        "no spaces or '@'), got 'S P D'",
        "d.yaml: agencies[1].code: expected a short code like SPD (at most 32 characters, "
        "no spaces or '@'), got 'a@b'",
    ]),
    ("duplicate names and codes", """
agencies:
  - {name: Springfield Police Department, code: SPD}
  - {name: springfield  police department}
  - {name: Sangamon Police, code: spd}
  - {name: SFD}
  - {name: Springfield Fire Department, code: sfd}
counties:
  - {name: Sangamon}
  - {name: Sangamon County}
""", [
        "d.yaml: counties[1].name: county 'Sangamon County' is already listed (counties[0])",
        "d.yaml: agencies[1].name: agency 'springfield police department' is already listed "
        "(agencies[0])",
        "d.yaml: agencies[2].code: code 'spd' is already the code of "
        "'Springfield Police Department' (agencies[0])",
        "d.yaml: agencies[4].code: code 'sfd' is the name of another agency (agencies[3]), "
        "so it would never find this one",
    ]),
    ("a domain or address claimed by two agencies", """
agencies:
  - name: Springfield Police Department
    domains: [spd.example.gov]
    addresses: [ann@mail.example.org]
  - name: Springfield Fire Department
    domains: [sfd.example.gov, SPD.example.gov.]
    addresses: [Ann@Mail.Example.Org]
""", [
        "d.yaml: agencies[1].domains[1]: domain spd.example.gov is claimed by both "
        "'Springfield Police Department' (agencies[0]) and 'Springfield Fire Department'; "
        "a domain belongs to one agency (list the users of a shared domain under addresses)",
        "d.yaml: agencies[1].addresses[0]: address ann@mail.example.org is claimed by both "
        "'Springfield Police Department' (agencies[0]) and 'Springfield Fire Department'; "
        "an address belongs to one agency",
    ]),
    ("a contact given twice", """
agencies:
  - name: A
    contacts:
      - {role: sponsor, name: Ann Lee}
      - {role: JTAC, name: Ann Lee}
      - {role: Sponsor, name: ann lee, email: ann@example.gov}
counties:
  - name: C
    contacts: [{role: registrar, name: Bob}, {role: registrar, name: Bob}]
""", [
        "d.yaml: counties[0].contacts[1]: registrar 'Bob' is listed twice "
        "(first at counties[0].contacts[0])",
        "d.yaml: agencies[0].contacts[2]: Sponsor 'ann lee' is listed twice "
        "(first at agencies[0].contacts[0])",
    ]),
]


@pytest.mark.parametrize("text, expected", [c[1:] for c in YAML_CASES],
                         ids=[c[0] for c in YAML_CASES])
def test_yaml_problems(tmp_path, text, expected):
    assert problems_of(tmp_path, "d.yaml", text) == expected


def test_what_is_fine(tmp_path):
    d = load_text(tmp_path, "d.yaml", """
agencies:
  - name: State
    domains: [state.example.gov, STATE.example.gov]    # the same domain twice in one agency
    addresses: [ann@state.example.gov]                 # an address in its own domain
  - name: Local
    domains: [local.state.example.gov]                 # inside another agency's domain
    county: Nowhere                                    # a county with no entry
  - name: Bare                                         # nothing but a name
""")
    assert d.agencies()[2].domains == ("state.example.gov",)
    assert d.whois("Nowhere County").county == County("Nowhere", ())


# --- every CSV problem, by line and column -----------------------------------------------------

CSV_CASES = [
    ("the header", "Agency,Role,Nmae,E-mail,,name\nA,x,y,,,z\n", [
        "d.csv, line 1: column 'Nmae': unknown column (expected: agency, code, county, domains, "
        "addresses, role, name, email, phone)",
        "d.csv, line 1: column 'E-mail': unknown column (expected: agency, code, county, domains, "
        "addresses, role, name, email, phone)",
    ]),
    ("a repeated column and missing ones", "agency,agency,email\nA,B,\n", [
        "d.csv, line 1: column 'agency': given twice",
        "d.csv, line 1: missing column 'role' (required: agency, role, name)",
        "d.csv, line 1: missing column 'name' (required: agency, role, name)",
    ]),
    ("cells without columns", "agency,role,name,\nA,x,y,\nA,x,z,oops\nB,x,y,,,more\n", [
        "d.csv, line 3: cell 4 has a value, 'oops', but its column has no header",
        "d.csv, line 4: 6 cells, but the header (line 1) has 4 columns",
    ]),
    ("contacts need a role and a name", HEADER +
     "A,,,,,sponsor,,,\n"
     "A,,,,,,Ann,,\n"
     "A,,,,,,,ann@example.gov,\n", [
        "d.csv, line 2: column 'name': missing (a contact needs a role and a name)",
        "d.csv, line 3: column 'role': missing (a contact needs a role and a name)",
        "d.csv, line 4: column 'role': missing (a contact needs a role and a name)",
        "d.csv, line 4: column 'name': missing (a contact needs a role and a name)",
    ]),
    ("bad values", HEADER +
     'A,S P D,,"a.example.gov; x y",a.example.gov,sponsor,Ann,ann@,2.17555E+09\n', [
        "d.csv, line 2: column 'email': expected an email address like ann@example.org, got 'ann@'",
        "d.csv, line 2: column 'phone': looks like a number a spreadsheet reformatted (format the "
        "column as text), got '2.17555E+09'",
        "d.csv, line 2: column 'code': expected a short code like SPD (at most 32 characters, "
        "no spaces or '@'), got 'S P D'",
        "d.csv, line 2: column 'domains': expected a mail domain like example.org, got 'x'",
        "d.csv, line 2: column 'domains': expected a mail domain like example.org, got 'y'",
        "d.csv, line 2: column 'addresses': expected an email address like ann@example.org, got "
        "'a.example.gov' (domains go under domains)",
    ]),
    ("county-level rows", HEADER +
     ",,,,,registrar,Ann,,\n"
     ",SPD,Sangamon,spd.example.gov,a@b.example.gov,registrar,Bob,,\n", [
        "d.csv, line 2: column 'county': missing (a row with an empty agency is a county-level "
        "contact and needs a county)",
        "d.csv, line 3: column 'code': must be empty on a county-level row (agency empty), "
        "got 'SPD'",
        "d.csv, line 3: column 'domains': must be empty on a county-level row (agency empty), "
        "got 'spd.example.gov'",
        "d.csv, line 3: column 'addresses': must be empty on a county-level row (agency empty), "
        "got 'a@b.example.gov'",
    ]),
    ("an agency's rows disagree", HEADER +
     "Springfield Police Department,SPD,Sangamon,,,sponsor,Ann,,\n"
     "springfield police department,spd,Sangamon County,,,JTAC,Bob,,\n"
     "Springfield Police Department,SPDX,Menard,,,registrar,Cy,,\n", [
        "d.csv, line 4: column 'code': 'SPDX' differs from 'SPD' given for "
        "'Springfield Police Department' on line 2",
        "d.csv, line 4: column 'county': 'Menard' differs from 'Sangamon' given for "
        "'Springfield Police Department' on line 2",
    ]),
    ("claims, codes and contacts across rows", HEADER +
     "Springfield Police Department,SPD,,spd.example.gov,ann@mail.example.org,sponsor,Ann,,\n"
     ",,Sangamon,,,registrar,Dana,,\n"
     "\n"
     '"Springfield Fire\nDepartment",spd,,"sfd.example.gov spd.example.gov",,sponsor,Ann,,\n'
     "Springfield Police Department,,,,,SPONSOR,ann,,\n"
     ",,Sangamon County,,,Registrar,dana,,\n"
     "Springfield Fire Department,,,,ANN@mail.example.org,,,,\n", [
        "d.csv, line 5: column 'code': code 'spd' is already the code of "
        "'Springfield Police Department' (line 2)",
        "d.csv, line 5: column 'domains': domain spd.example.gov is claimed by both "
        "'Springfield Police Department' (line 2) and 'Springfield Fire Department'; a domain "
        "belongs to one agency (list the users of a shared domain under addresses)",
        "d.csv, line 9: column 'addresses': address ann@mail.example.org is claimed by both "
        "'Springfield Police Department' (line 2) and 'Springfield Fire Department'; an address "
        "belongs to one agency",
        "d.csv, line 8: Registrar 'dana' is listed twice (first at line 3)",
        "d.csv, line 7: SPONSOR 'ann' is listed twice (first at line 2)",
    ]),
]


@pytest.mark.parametrize("text, expected", [c[1:] for c in CSV_CASES],
                         ids=[c[0] for c in CSV_CASES])
def test_csv_problems(tmp_path, text, expected):
    assert problems_of(tmp_path, "d.csv", text) == expected


# --- size --------------------------------------------------------------------------------------

def generated(n: int) -> tuple[str, str]:
    """A directory of n agencies in 50 counties, as YAML and as CSV."""
    yaml_lines = ["counties:"]
    csv_lines = [HEADER.strip()]
    for c in range(50):
        yaml_lines += [f"  - name: County {c}", "    contacts:",
                       f"      - {{role: registrar, name: Registrar {c}, "
                       f"email: registrar@c{c}.example.gov}}"]
        csv_lines.append(f",,County {c},,,registrar,Registrar {c},registrar@c{c}.example.gov,")
    yaml_lines.append("agencies:")
    for i in range(n):
        yaml_lines += [
            f"  - name: Agency {i:05d}", f"    code: A{i}", f"    county: County {i % 50}",
            f"    domains: [a{i}.example.gov, mail.a{i}.example.org]",
            f"    addresses: [user{i}@shared.example.org]",
            "    contacts:",
            f"      - {{role: sponsor, name: Sponsor {i}, email: sponsor@a{i}.example.gov, "
            f"phone: '+1 555 0100'}}",
            f"      - {{role: JTAC, name: JTAC {i}, email: jtac@a{i}.example.gov}}"]
        csv_lines += [
            f"Agency {i:05d},A{i},County {i % 50},a{i}.example.gov;mail.a{i}.example.org,"
            f"user{i}@shared.example.org,sponsor,Sponsor {i},sponsor@a{i}.example.gov,+1 555 0100",
            f"Agency {i:05d},,,,,JTAC,JTAC {i},jtac@a{i}.example.gov,"]
    return "\n".join(yaml_lines) + "\n", "\n".join(csv_lines) + "\n"


def test_a_directory_of_5000_agencies(tmp_path):
    yaml_text, csv_text = generated(5000)
    d = load_text(tmp_path, "big.yaml", yaml_text)
    assert d.agencies() == load_text(tmp_path, "big.csv", csv_text).agencies()
    assert len(d.agencies()) == 5000 and len(d.counties()) == 50
    assert d.agency_of("ann@x.a4321.example.gov").code == "A4321"
    assert d.agency_of("user17@shared.example.org").code == "A17"
    answer = d.whois("a4999")
    assert names(answer) == ["Agency 04999"]
    assert [c.name for c in answer.contacts] == ["Sponsor 4999", "JTAC 4999", "Registrar 49"]
    assert names(d.whois("agency 0123")) == [f"Agency {i:05d}" for i in range(1230, 1240)]
    assert d.whois("County 7 county").county.contacts[0].email == "registrar@c7.example.gov"


# --- built in code -----------------------------------------------------------------------------

def test_a_directory_built_in_code():
    spd = Agency("SPD", None, "Sangamon", ("spd.example.gov",), (), ())
    d = Directory([spd])
    assert d.counties() == (County("Sangamon", ()),)
    assert d.whois("sangamon").county.name == "Sangamon"
    with pytest.raises(ValueError, match="the domain 'spd.example.gov' is given twice"):
        Directory([spd, Agency("Other", None, None, ("spd.example.gov",), (), ())])
    assert Directory().whois("anything") == Answer("anything")
