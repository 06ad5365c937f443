"""Generate a large, valid, deterministic roster fixture (``clever-sim fixtures generate``).

Everything random comes from one ``random.Random(seed)``, and no clock is read, so the same
arguments always give byte-identical output.  The result passes
``simulator.roster.validate_roster``: ids are 24 lowercase hex characters and unique,
every reference stays inside its district, a section's primary teacher is one of its
teachers, students are listed once per section, grading scales exist.

Shape (a district like Clever's own sandbox with ``--schools 239 --teachers 8400
--students 56600 --sections 20000``, about 460,000 enrollments):

* districts get the schools round-robin; each school is elementary, middle or high
  (grade band, course names, section names and periods follow it) and has a size weight,
  so schools differ in size;
* teachers and students are spread over schools by weight, every school with a section
  has a teacher; sections are dealt to teachers (so each teacher has about the same
  number) and sit in the teacher's school; ~10 % have a co-teacher;
* each student is enrolled in ``enrollments / students`` sections of their school (±1,
  never more than the school has); elementary schools give fewer, secondary more;
* names are varied and realistic, from many languages: accents (Núñez, Nguyễn, Ødegaard),
  apostrophes and hyphens (O'Connor, García-López), particles (De La Cruz, van der Berg),
  and a few in their own script (王, Διονύσης, Սարգսյան).  Emails and usernames are
  their ASCII transliteration.

No Flask here.
"""

from __future__ import annotations

import json
import random
import unicodedata
from dataclasses import dataclass, field
from typing import IO, Iterator

__all__ = ["GenerateError", "generate_roster", "write_roster", "DEMO_APP", "SANDBOX"]

#: Clever's own sandbox district, for ``--sandbox`` and the benchmarks.
SANDBOX = {"schools": 239, "teachers": 8400, "students": 56600, "sections": 20000,
           "enrollments": 460000}

#: The reference partner (same credentials as the default fixture), connected to every district.
DEMO_APP = {
    "name": "Demo Partner (reference)",
    "client_id": "b4fd885bda79813831c3",
    "client_secret": "da526e74a665e82ccb6ae91b4bf56e28e5cea3bc",
    "redirect_uris": ["http://127.0.0.1:5001/clever/callback",
                      "http://localhost:5001/clever/callback"],
    "assignments_url": "http://127.0.0.1:5001/clever/assignments",
}

ENROLLMENTS_PER_STUDENT = 8.15  # Clever's sandbox: ~460,000 enrollments / 56,600 students


class GenerateError(ValueError):
    """Arguments that cannot make a valid roster (e.g. sections but no teachers)."""


# --- names --------------------------------------------------------------------------------
# (first names, last names) per heritage; weights roughly follow a large US urban district.

_NAMES: list[tuple[int, list[str], list[str]]] = [
    (34, ["María", "José", "Sofía", "Mateo", "Valentina", "Santiago", "Camila", "Diego", "Ximena",
          "Joaquín", "Lucía", "Andrés", "Guadalupe", "Jesús", "Ángel", "Daniela", "Emiliano",
          "Itzel", "Renée", "Raúl", "Marisol", "Héctor", "Araceli", "Iván", "Yesenia", "Leonardo",
          "Natalia", "Óscar", "Paloma", "Ramón", "Abril", "Tomás", "Inés", "Julián", "Belén"],
     ["García", "Hernández", "López", "Martínez", "González", "Rodríguez", "Pérez", "Sánchez",
      "Ramírez", "Flores", "Núñez", "Muñoz", "Gutiérrez", "Ibáñez", "Peña", "Chávez", "Jiménez",
      "Vázquez", "Domínguez", "Ortiz", "Castañeda", "Guzmán", "Méndez", "Ruíz", "De La Cruz",
      "García-López", "Treviño", "Orozco", "Zúñiga", "Del Río", "Ávila", "Cortés", "Báez"]),
    (20, ["James", "Olivia", "Liam", "Emma", "Noah", "Ava", "Ethan", "Harper", "Mason", "Abigail",
          "Logan", "Madison", "Jackson", "Brooklyn", "Aiden", "Avery", "Caleb", "Riley", "Owen",
          "Zoë", "Chloé", "Wyatt", "Nora", "Henry", "Claire", "Jack", "Grace", "Luke", "Hazel"],
     ["Smith", "Johnson", "Williams", "Brown", "Jones", "Miller", "Davis", "Wilson", "Anderson",
      "Taylor", "Thomas", "Moore", "Jackson", "Martin", "Thompson", "White", "Harris", "Clark",
      "Lewis", "Walker", "Young", "Allen", "King", "Wright", "Scott", "Hill", "Green", "Baker",
      "O'Connor", "O'Brien", "McAllister", "Fitzgerald", "St. John", "Smith-Jones"]),
    (10, ["Jamal", "Aaliyah", "DeShawn", "Imani", "Malik", "Keisha", "Darnell", "Nia", "Tyrone",
          "Zuri", "Andre", "Jazmine", "Marcus", "Ebony", "Terrell", "Amara", "Khalil", "Nayeli"],
     ["Washington", "Jefferson", "Robinson", "Banks", "Coleman", "Freeman", "Bryant", "Okafor",
      "Adeyemi", "Mensah", "Diallo", "Oyelaran", "Nwosu", "Boateng", "Kamara", "Abebe"]),
    (8, ["Minh", "Linh", "Huy", "Thảo", "Quân", "Ngọc", "Phúc", "Trâm", "Bảo", "Hương", "Đức", "An"],
     ["Nguyễn", "Trần", "Lê", "Phạm", "Hoàng", "Võ", "Đặng", "Bùi", "Đỗ", "Huỳnh", "Ngô", "Dương"]),
    (8, ["Wei", "Mei", "Jun", "Xiaoling", "Hao", "Yan", "Jia", "Lei", "Ming", "Yu", "Zihan", "Ruoxi",
         "Ji-woo", "Min-jun", "Seo-yeon", "Ha-eun", "Hiroshi", "Yūki", "Aiko", "Sōta", "Haruto"],
     ["Wang", "Li", "Zhang", "Liu", "Chen", "Huang", "Zhao", "Wu", "Zhou", "Xu", "Lin", "Kim",
      "Park", "Lee", "Choi", "Jung", "Kang", "Satō", "Suzuki", "Takahashi", "Tanaka", "Itō", "Ōta"]),
    (5, ["Juan Carlos", "Maria Clara", "Jose Miguel", "Rizal", "Angelica", "Marites", "Rogelio"],
     ["Dela Cruz", "Santos", "Reyes", "Bautista", "Villanueva", "Mendoza", "Aquino", "Macaraeg"]),
    (4, ["Arman", "Anahit", "Narek", "Lilit", "Tigran", "Ani", "Hayk", "Mariam", "Gor", "Nare"],
     ["Hakobyan", "Sargsyan", "Petrosyan", "Grigoryan", "Avetisyan", "Harutyunyan", "Karapetyan"]),
    (4, ["Mohammed", "Fatima", "Omar", "Layla", "Yusuf", "Amira", "Karim", "Nour", "Zainab", "Tariq",
         "Aïcha", "Rania", "Hassan", "Samira"],
     ["Al-Sayed", "Haddad", "Khoury", "Nasser", "Rahman", "Farouk", "El-Amin", "Abdallah", "Saleh"]),
    (4, ["Priya", "Arjun", "Ananya", "Rohan", "Kavya", "Vikram", "Aditi", "Sanjay", "Meera", "Ishaan"],
     ["Patel", "Sharma", "Singh", "Gupta", "Reddy", "Iyer", "Chatterjee", "Nair", "Venkataraman"]),
    (3, ["Jürgen", "Søren", "Øyvind", "Åsa", "Björn", "Léa", "François", "Zoé", "Mathéo", "Anaïs",
         "Giuseppe", "Chiara", "Łukasz", "Małgorzata", "Zoltán", "Dvořák", "Ümit", "Çağla", "Bartłomiej"],
     ["Müller", "Schröder", "Ødegaard", "Ångström", "Lefèvre", "Dubois", "Rossi", "Esposito",
      "Wójcik", "Kowalczyk", "Szabó", "Novák", "Çelik", "Yılmaz", "van der Berg", "de Vries",
      "Dvořáková", "Ó Súilleabháin", "Mac Giolla Phádraig"]),
    (1, ["王", "美咲", "Διονύσης", "Αλεξάνδρα", "Սարգիս", "Дмитрий", "Анастасия", "محمد", "سارة", "민준"],
     ["李", "佐藤", "Παπαδόπουλος", "Սարգսյան", "Иванова", "Смирнов", "حداد", "김"]),
]
_NAME_WEIGHTS = [w for w, _, _ in _NAMES]
_MIDDLE = ["Ann", "Lee", "Marie", "James", "Lynn", "Rose", "Elena", "Grace", "Luis", "Jean",
           "Alexander", "Kai", "Noël", "Inés", "Thị", "Văn"]

_SUBJECTS = {
    "elementary": [("homeroom", "Homeroom"), ("math", "Math"), ("english/language arts", "ELA"),
                   ("science", "Science"), ("social studies", "Social Studies"),
                   ("arts and music", "Music"), ("physical education", "PE")],
    "middle": [("math", "Math"), ("english/language arts", "English"), ("science", "Science"),
               ("social studies", "History"), ("language", "Spanish"), ("arts and music", "Art"),
               ("physical education", "PE"), ("technology and engineering", "Robotics")],
    "high": [("math", "Algebra I"), ("math", "Geometry"), ("math", "AP Calculus AB"),
             ("english/language arts", "English 10"), ("english/language arts", "AP Literature"),
             ("science", "Biology"), ("science", "Chemistry"), ("science", "Physics"),
             ("social studies", "U.S. History"), ("social studies", "Économie & Société"),
             ("language", "Español para hispanohablantes"), ("language", "Mandarin 中文 II"),
             ("arts and music", "Orchestra"), ("computer science", "AP Computer Science A"),
             ("physical education", "PE")],
}
_BANDS = [("elementary", 0.6, ("Kindergarten", "5"), [str(g) for g in range(1, 6)] + ["Kindergarten"]),
          ("middle", 0.2, ("6", "8"), ["6", "7", "8"]),
          ("high", 0.2, ("9", "12"), ["9", "10", "11", "12"])]
_SCHOOL_WORDS = ["Mariposa", "Sequoia", "Cesar E. Chavez", "Dolores Huerta", "Roosevelt", "Lincoln",
                 "Hollenbeck", "Los Feliz", "Boyle Heights", "Echo Park", "Sunrise", "Harbor View",
                 "Bell Gardens", "Van Nuys", "Reseda", "Eagle Rock", "Crenshaw", "Watts", "Venice",
                 "Westchester", "Palms", "Canoga Park", "Sylmar", "Pacoima", "El Sereno",
                 "Highland Park", "Wilmington", "San Pedro", "Granada Hills", "Toluca Lake",
                 "Sun Valley", "Tujunga", "Mount Washington", "Atwater", "Leimert Park",
                 "Maywood", "Huntington Park", "Lomita", "Marina del Rey", "Ocean View",
                 "Mar Vista", "Montecito Heights", "Glassell Park", "Cypress Park", "Jefferson",
                 "Mendez", "Sotomayor", "Yoshida", "Tsai", "Ramona", "Kōrin", "Señora Peña"]
_SCHOOL_KIND = {"elementary": ["Elementary School", "Primary Center", "Elementary"],
                "middle": ["Middle School", "Academy", "STEAM Magnet"],
                "high": ["High School", "Senior High", "Early College High School"]}
_GENDERS = ["F", "M", "X"]
_RACES = ["American Indian or Alaska Native", "Asian", "Black or African American",
          "Native Hawaiian or Other Pacific Islander", "White", "Two or More Races"]
_DISTRICT_NAMES = ["Pacific Coast Unified School District", "Sierra Vista School District",
                   "Río Bravo Independent School District", "Lakeshore Public Schools",
                   "Cedar Ridge County Schools", "Bayside Unified School District"]
_CITIES = [("Los Angeles", "CA", "900"), ("San José", "CA", "951"), ("El Paso", "TX", "799"),
           ("Chicago", "IL", "606"), ("Seattle", "WA", "981"), ("Miami", "FL", "331")]


# --- helpers ------------------------------------------------------------------------------

def ascii_slug(text: str) -> str:
    """Lowercase ASCII letters/digits of a name (accents stripped; other scripts dropped)."""
    decomposed = unicodedata.normalize("NFKD", text)
    out = "".join(ch for ch in decomposed if ch.isascii() and ch.isalnum())
    return out.lower()


@dataclass
class _School:
    record: dict
    band: str
    grades: list[str]
    weight: float
    teachers: list[str] = field(default_factory=list)
    sections: list[dict] = field(default_factory=list)
    principal: dict = field(default_factory=dict)     # name, for the principal's staff user
    principal_user: str = ""


class _Ids:
    """Unique 24-hex ids from the generator's rng."""

    def __init__(self, rng: random.Random):
        self.rng = rng
        self.seen: set[str] = set()

    def __call__(self) -> str:
        while True:
            value = f"{self.rng.getrandbits(96):024x}"
            if value not in self.seen:
                self.seen.add(value)
                return value


def _stamp(rng: random.Random, year: int, month_lo: int, month_hi: int) -> str:
    """A fixed-looking ISO timestamp (no clock read: output depends on the seed only)."""
    return (f"{year}-{rng.randint(month_lo, month_hi):02d}-{rng.randint(1, 28):02d}T"
            f"{rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}:{rng.randint(0, 59):02d}."
            f"{rng.randint(0, 999):03d}Z")


def _spread(total: int, weights: list[float], rng: random.Random, minimum: int = 0) -> list[int]:
    """Split ``total`` into integer parts proportional to ``weights`` (each ≥ ``minimum``)."""
    n = len(weights)
    if n == 0:
        return []
    base = [minimum] * n
    left = total - minimum * n
    if left < 0:  # cannot give everyone the minimum: give it to the first ``total``
        return [1 if i < total else 0 for i in range(n)] if minimum else [0] * n
    wsum = sum(weights) or 1.0
    exact = [left * w / wsum for w in weights]
    parts = [int(x) for x in exact]
    rest = left - sum(parts)
    order = sorted(range(n), key=lambda i: (exact[i] - parts[i], rng.random()), reverse=True)
    for i in order[:rest]:
        parts[i] += 1
    return [b + p for b, p in zip(base, parts)]


# --- the generator ------------------------------------------------------------------------

class _Gen:
    def __init__(self, seed: int):
        self.rng = random.Random(seed)
        self.ids = _Ids(self.rng)
        self.usernames: dict[str, int] = {}

    def name(self) -> dict:
        rng = self.rng
        _, firsts, lasts = rng.choices(_NAMES, weights=_NAME_WEIGHTS)[0]
        name = {"first": rng.choice(firsts), "last": rng.choice(lasts)}
        if rng.random() < 0.35:
            name["middle"] = rng.choice(_MIDDLE)
        return name

    def username(self, name: dict) -> str:
        base = (ascii_slug(name["first"])[:1] + ascii_slug(name["last"]))[:16] or "user"
        n = self.usernames.get(base, 0) + 1
        self.usernames[base] = n
        return base if n == 1 else f"{base}{n}"

    def district(self, i: int) -> tuple[dict, str]:
        rng = self.rng
        name = _DISTRICT_NAMES[i % len(_DISTRICT_NAMES)]
        if i >= len(_DISTRICT_NAMES):
            name = f"{name} {i // len(_DISTRICT_NAMES) + 1}"
        slug = ascii_slug(name.split()[0]) + (str(i) if i else "")
        did = self.ids()
        pid = lambda: str(rng.randint(1_000_000, 9_999_999))  # noqa: E731 - Schoology ids
        periods = [{"id": pid(), "title": t, "start": s, "end": e} for t, s, e in (
            ("Q1 2026–27", "2026-08-12", "2026-10-16"), ("Q2 2026–27", "2026-10-19", "2026-12-18"),
            ("Q3 2026–27", "2027-01-05", "2027-03-12"), ("Q4 2026–27", "2027-03-15", "2027-06-04"),
            ("S1 2026–27", "2026-08-12", "2026-12-18"), ("S2 2026–27", "2027-01-05", "2027-06-04"))]
        categories = [{"id": pid(), "title": t} for t in
                      ("Homework", "Classwork", "Quizzes", "Tests", "Projects", "Participación")]
        scales = [
            {"id": pid(), "title": "Standard A–F", "levels": [
                {"letter": lt, "min_percent": mp} for lt, mp in
                (("A", 90), ("B", 80), ("C", 70), ("D", 60), ("F", 0))]},
            {"id": pid(), "title": "Plus/Minus", "levels": [
                {"letter": lt, "min_percent": mp} for lt, mp in
                (("A+", 97), ("A", 93), ("A-", 90), ("B+", 87), ("B", 83), ("B-", 80), ("C+", 77),
                 ("C", 73), ("C-", 70), ("D+", 67), ("D", 63), ("D-", 60), ("F", 0))]},
            {"id": pid(), "title": "Standards-based (1–4)", "levels": [
                {"letter": lt, "min_percent": mp} for lt, mp in
                (("4", 87.5), ("3", 62.5), ("2", 37.5), ("1", 0))]},
        ]
        contact = self.name()
        record = {
            "id": did, "name": name, "state": "running", "sis_type": "sftp",
            "login_methods": ["google", "clever_badges"],
            "portal_url": f"https://clever.com/in/{slug}", "launch_date": "2026-07-01",
            "last_sync": _stamp(rng, 2026, 8, 8), "error": "",
            "mdr_number": str(rng.randint(10_000_000, 99_999_999)),
            "nces_id": str(rng.randint(1_000_000, 9_999_999)),
            "district_contact": {"id": self.ids(), "district": did,
                                 "email": f"technology@{slug}.example.org",
                                 "name": {"first": contact["first"], "last": contact["last"]},
                                 "title": "Director of Educational Technology"},
            "schoology": {"grading_periods": periods, "grading_categories": categories,
                          "grading_scales": scales},
        }
        return record, slug

    def school(self, i: int, district: dict, slug: str, city: tuple) -> _School:
        rng = self.rng
        band, _, (low, high), grades = rng.choices(_BANDS, weights=[b[1] for b in _BANDS])[0]
        word = _SCHOOL_WORDS[i % len(_SCHOOL_WORDS)]
        kind = rng.choice(_SCHOOL_KIND[band])
        name = f"{word} {kind}" if i < len(_SCHOOL_WORDS) else f"{word} {kind} #{i // len(_SCHOOL_WORDS) + 1}"
        number = str(100 + i)
        principal = self.name()
        principal_user = self.username(principal)
        record = {
            "id": self.ids(), "district": district["id"], "name": name, "school_number": number,
            "sis_id": number, "state_id": str(rng.randint(10 ** 13, 10 ** 14 - 1)),
            "nces_id": str(rng.randint(10 ** 11, 10 ** 12 - 1)),
            "mdr_number": str(rng.randint(10_000_000, 99_999_999)),
            "low_grade": low, "high_grade": high,
            "phone": f"({rng.randint(200, 989)}) 555-{rng.randint(0, 9999):04d}",
            "location": {"address": f"{rng.randint(100, 19999)} {rng.choice(_SCHOOL_WORDS)} "
                                    f"{rng.choice(['Avenue', 'Street', 'Boulevard', 'Way'])}",
                         "city": city[0], "state": city[1],
                         "zip": f"{city[2]}{rng.randint(0, 99):02d}"},
            "principal": {"name": f"{principal['first']} {principal['last']}",
                          "email": f"{principal_user}@{slug}.example.org"},
            "created": _stamp(rng, 2026, 6, 6), "last_modified": _stamp(rng, 2026, 8, 8),
            "ext": {},
        }
        # Schools differ in size: a few large, many medium, some small.
        weight = rng.lognormvariate(0, 0.5) * (2.5 if band == "high" else 1.5 if band == "middle" else 1)
        return _School(record, band, grades, weight, principal=principal,
                       principal_user=principal_user)

    def teacher(self, i: int, school: _School, slug: str, extra_school: str | None,
                also_staff: bool = False) -> dict:
        rng = self.rng
        name = self.name()
        user = self.username(name)
        email = f"{user}@{slug}.example.org"
        schools = [school.record["id"]] + ([extra_school] if extra_school else [])
        title = rng.choice(["Teacher", "Lead Teacher", "Department Chair", "Substitute Teacher",
                            "Resource Specialist", f"Grade {rng.choice(school.grades)} Teacher"])
        uid = self.ids()
        record = {
            "id": uid, "district": school.record["district"], "email": email, "name": name,
            "created": _stamp(rng, 2026, 6, 7), "last_modified": _stamp(rng, 2026, 8, 8),
            "roles": {"teacher": {
                "credentials": {"district_username": user}, "ext": {},
                "school": school.record["id"], "schools": schools,
                "sis_id": f"T{50000 + i}", "state_id": str(rng.randint(1_000_000, 9_999_999)),
                "teacher_number": str(50000 + i), "title": title, "email": email}},
        }
        if also_staff:  # a teacher who is also staff (Clever v3: one user, two roles)
            record["roles"]["staff"] = {
                "credentials": {"district_username": user}, "department": "Curriculum and Instruction",
                "ext": {}, "schools": list(schools), "staff_id": f"S{50000 + i}",
                "title": "Instructional Coach"}
        return record

    def student(self, i: int, school: _School, slug: str, with_email: bool = True) -> dict:
        rng = self.rng
        name = self.name()
        user = self.username(name)
        email = f"{user}@students.{slug}.example.org"
        grade = rng.choice(school.grades)
        level = 0 if grade == "Kindergarten" else int(grade)
        years_left = 13 - level  # to graduation
        uid = self.ids()
        record = {
            "id": uid, "district": school.record["district"], "email": email, "name": name,
            "created": _stamp(rng, 2026, 6, 7), "last_modified": _stamp(rng, 2026, 8, 8),
            "roles": {"student": {
                "credentials": {"district_username": user},
                "dob": f"{rng.randint(1, 12)}/{rng.randint(1, 28)}/{2020 - level}",
                "ext": {}, "gender": rng.choice(_GENDERS), "grade": grade,
                "graduation_year": str(2026 + years_left),
                "hispanic_ethnicity": rng.choice(["Y", "N"]), "race": rng.choice(_RACES),
                "location": {"zip": school.record["location"]["zip"]},
                "school": school.record["id"], "schools": [school.record["id"]],
                "sis_id": str(100000 + i), "state_id": str(rng.randint(10 ** 9, 10 ** 10 - 1)),
                "student_number": str(100000 + i), "email": email}},
        }
        if not with_email:  # Clever: email "may not be present for all users"
            del record["email"], record["roles"]["student"]["email"]
        return record

    def principal(self, i: int, school: _School, slug: str) -> dict:
        """The school's principal (its ``principal`` field) as a staff-only user."""
        rng = self.rng
        return {
            "id": self.ids(), "district": school.record["district"],
            "email": f"{school.principal_user}@{slug}.example.org", "name": school.principal,
            "created": _stamp(rng, 2026, 6, 7), "last_modified": _stamp(rng, 2026, 8, 8),
            "roles": {"staff": {
                "credentials": {"district_username": school.principal_user}, "department": None,
                "ext": {}, "schools": [school.record["id"]], "staff_id": f"S{10000 + i}",
                "title": "Principal"}},
        }

    def district_admin(self, district: dict) -> dict:
        """The district's contact as its district admin: its v2 id is the contact's id."""
        contact = district["district_contact"]
        return {
            "id": self.ids(), "district": district["id"], "email": contact["email"],
            "name": dict(contact["name"]),
            "created": _stamp(self.rng, 2026, 6, 6), "last_modified": _stamp(self.rng, 2026, 8, 8),
            "roles": {"district_admin": {"legacy_id": contact["id"], "title": contact["title"]}},
        }

    def contact(self, i: int, student: dict) -> dict:
        """A parent or guardian of ``student``; every third has a null email."""
        rng = self.rng
        name = {"first": self.name()["first"], "last": student["name"]["last"]}
        user = self.username(name)
        kind = ("Parent", "Parent/Guardian") if i % 4 else ("Grandparent", "Emergency")
        return {
            "id": self.ids(), "district": student["district"],
            "email": None if i % 3 == 2 else f"{user}@family.example.net", "name": name,
            "created": _stamp(rng, 2026, 6, 7), "last_modified": _stamp(rng, 2026, 8, 8),
            "roles": {"contact": {
                "phone": f"({rng.randint(200, 989)}) 555-{rng.randint(0, 9999):04d}",
                "phone_type": ("Cell", "Home", "Work")[i % 3], "sis_id": f"C{200000 + i}",
                "student_relationships": [{"student": student["id"], "relationship": kind[0],
                                           "type": kind[1]}]}},
        }

    def section(self, n: int, school: _School, teacher: str, co_teacher: str | None,
                term: dict, district: dict) -> dict:
        rng = self.rng
        subject, title = rng.choice(_SUBJECTS[school.band])
        grade = rng.choice(school.grades)
        period = str(rng.randint(1, 7))
        if school.band == "elementary":
            label = f"Grade {grade} {title}" if grade != "Kindergarten" else f"Kindergarten {title}"
        else:
            label = title
        number = f"{ascii_slug(title)[:6].upper() or 'SEC'}-{n:05d}"
        scales = district["schoology"]["grading_scales"]
        teachers = [teacher] + ([co_teacher] if co_teacher else [])
        return {
            "id": self.ids(), "district": district["id"], "school": school.record["id"],
            "term_id": term["id"], "course": self.ids(), "name": f"{label} – Period {period}",
            "subject": subject, "grade": grade, "period": period, "section_number": number,
            "sis_id": f"{school.record['school_number']}-{number}", "teacher": teacher,
            "teachers": teachers, "students": [],
            "created": _stamp(rng, 2026, 7, 7), "last_modified": _stamp(rng, 2026, 8, 8),
            "ext": {}, "schoology": {"grading_scale": scales[0 if rng.random() < 0.7 else
                                                              rng.randrange(len(scales))]["id"]},
        }


def generate_roster(*, schools: int, teachers: int, students: int, sections: int, seed: int = 0,
                    districts: int = 1, enrollments: int | None = None,
                    with_app: bool = True, varied: bool = True) -> dict:
    """A valid roster document with exactly these counts (enrollments: at most ``enrollments``).

    ``enrollments`` is the total of student–section memberships (default: about 8 per
    student, Clever's sandbox ratio); a student never joins more sections than their
    school has, so the total can come out lower for very small section counts.

    ``varied`` (the default) adds every optional and nullable shape Clever serves, chosen by
    position so each appears once a roster is big enough: every 20th student (from the 8th)
    has no email and every 50th (from the 12th) is in no section; every 25th teacher (from
    the 4th) is also staff and every 25th (from the 6th) also works at a second school of
    the district; each school's principal is a staff user, each district's contact its
    district admin, and every 10th student has a contact (every third of them without
    email).  ``varied=False`` gives only teachers and students, each with an email.
    """
    for label, value, lo in (("districts", districts, 1), ("schools", schools, 1),
                             ("teachers", teachers, 0), ("students", students, 0),
                             ("sections", sections, 0)):
        if not isinstance(value, int) or value < lo:
            raise GenerateError(f"--{label} must be a whole number ≥ {lo} (got {value!r})")
    if districts > schools:
        raise GenerateError(f"--districts ({districts}) cannot exceed --schools ({schools}): "
                            "every district needs a school")
    if sections and not teachers:
        raise GenerateError("sections need teachers: give --teachers ≥ 1 or --sections 0")
    if enrollments is None:
        enrollments = round(students * ENROLLMENTS_PER_STUDENT)
    if enrollments < 0:
        raise GenerateError("--enrollments must be ≥ 0")

    g = _Gen(seed)
    rng = g.rng
    district_records, slugs, terms = [], [], []
    for i in range(districts):
        record, slug = g.district(i)
        district_records.append(record)
        slugs.append(slug)
        terms.append({"id": g.ids(), "district": record["id"], "name": "2026–27 School Year",
                      "start_date": "2026-08-12", "end_date": "2027-06-04"})
    by_district = {d["id"]: i for i, d in enumerate(district_records)}

    school_objs = [g.school(i, district_records[i % districts], slugs[i % districts],
                            _CITIES[(i % districts) % len(_CITIES)]) for i in range(schools)]
    weights = [s.weight for s in school_objs]

    # Teachers: by school weight; schools get at least one while there are enough teachers.
    users: list[dict] = []
    per_school = _spread(teachers, weights, rng, minimum=1 if teachers >= schools else 0)
    n = 0
    for school, count in zip(school_objs, per_school):
        d = by_district[school.record["district"]]
        for _ in range(count):
            extra = None
            others = [s for s in school_objs if s is not school
                      and s.record["district"] == school.record["district"]]
            if rng.random() < 0.02:  # a few teach at two schools of the district
                if others:
                    extra = rng.choice(others).record["id"]
            if varied and extra is None and others and n % 25 == 5:
                extra = others[0].record["id"]
            t = g.teacher(n, school, slugs[d], extra, also_staff=varied and n % 25 == 3)
            school.teachers.append(t["id"])
            users.append(t)
            n += 1

    # Sections: dealt to teachers round-robin (shuffled), so loads are even.
    staffed = [s for s in school_objs if s.teachers]
    teacher_slots = [(s, t) for s in staffed for t in s.teachers]
    rng.shuffle(teacher_slots)
    section_records: list[dict] = []
    for k in range(sections):
        school, teacher = teacher_slots[k % len(teacher_slots)]
        co = None
        if len(school.teachers) > 1 and rng.random() < 0.1:
            co = rng.choice([t for t in school.teachers if t != teacher])
        d = by_district[school.record["district"]]
        sec = g.section(k, school, teacher, co, terms[d], district_records[d])
        school.sections.append(sec)
        section_records.append(sec)

    # Students: by school weight; enrolled in sections of their own school.
    per_school = _spread(students, weights, rng)
    placed = [n for n in range(students) if not (varied and n % 50 == 11)]  # others: no section
    base, extra = divmod(enrollments, len(placed)) if placed else (0, 0)
    bonus = set(rng.sample(placed, extra)) if placed else set()
    placed_set = set(placed)
    n = 0
    for school, count in zip(school_objs, per_school):
        d = by_district[school.record["district"]]
        pool = school.sections
        for _ in range(count):
            s = g.student(n, school, slugs[d], with_email=not (varied and n % 20 == 7))
            users.append(s)
            want = (base + (1 if n in bonus else 0)) if n in placed_set else 0
            for sec in (rng.sample(pool, min(want, len(pool))) if pool and want else []):
                sec["students"].append(s["id"])
            n += 1

    if varied:
        students_made = [u for u in users if "student" in u["roles"]]
        users += [g.principal(i, school, slugs[by_district[school.record["district"]]])
                  for i, school in enumerate(school_objs)]
        users += [g.district_admin(d) for d in district_records]
        users += [g.contact(i, st) for i, st in enumerate(students_made[::10])]

    apps = []
    if with_app:
        apps.append({**DEMO_APP, "redirect_uris": list(DEMO_APP["redirect_uris"]),
                     "districts": [d["id"] for d in district_records]})
    return {"districts": district_records, "schools": [s.record for s in school_objs],
            "terms": terms, "users": users, "sections": section_records, "apps": apps}


def iter_json(doc: dict) -> Iterator[str]:
    """The document as compact JSON text, one record per line (diff- and grep-friendly)."""
    yield "{"
    keys = list(doc)
    for ki, key in enumerate(keys):
        yield f"\n{json.dumps(key)}: ["
        items = doc[key]
        for i, item in enumerate(items):
            yield ("\n" if i == 0 else ",\n") + json.dumps(item, ensure_ascii=False,
                                                           separators=(",", ":"))
        yield ("\n]" if items else "]") + ("," if ki < len(keys) - 1 else "")
    yield "\n}\n"


def write_roster(doc: dict, out: IO[str]) -> int:
    """Write ``doc`` as UTF-8 JSON text; returns the number of characters written."""
    total = 0
    buf: list[str] = []
    size = 0
    for chunk in iter_json(doc):
        buf.append(chunk)
        size += len(chunk)
        if size > 1 << 20:
            text = "".join(buf)
            out.write(text)
            total += len(text)
            buf, size = [], 0
    text = "".join(buf)
    out.write(text)
    return total + len(text)
