-- The simulator's whole state, one SQLite file (WAL). Records keep Clever's JSON in `data`.
PRAGMA foreign_keys = ON;

CREATE TABLE IF NOT EXISTS meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

CREATE TABLE IF NOT EXISTS districts (
    id   TEXT PRIMARY KEY,
    data TEXT NOT NULL
);

CREATE TABLE IF NOT EXISTS schools (
    id          TEXT PRIMARY KEY,
    district_id TEXT NOT NULL,
    data        TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS schools_district ON schools(district_id, id);

CREATE TABLE IF NOT EXISTS terms (
    id          TEXT PRIMARY KEY,
    district_id TEXT NOT NULL,
    data        TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS terms_district ON terms(district_id, id);

-- users.n and sections.n (their rowids, named so that VACUUM keeps them): the roster's
-- order, and what section_members stores instead of the 24-character ids. Their ids are
-- unique by an index of their own (not a UNIQUE constraint), which a roster load drops and
-- builds once after the rows (store.clear_roster): faster than row by row.
CREATE TABLE IF NOT EXISTS users (
    n           INTEGER PRIMARY KEY,
    id          TEXT NOT NULL,
    district_id TEXT NOT NULL,
    role        TEXT NOT NULL,              -- primary role (simulator.ids.primary_role)
    data        TEXT NOT NULL
);
DROP INDEX IF EXISTS users_district_role;  -- lists by role read user_roles (people hold several)
DROP INDEX IF EXISTS users_role;
CREATE UNIQUE INDEX IF NOT EXISTS users_id ON users(id);
CREATE INDEX IF NOT EXISTS users_district ON users(district_id, id);   -- v3 /users lists

-- Every role each person holds (a teacher may also be staff): v2 /teachers, v3 ?role=.
CREATE TABLE IF NOT EXISTS user_roles (
    role        TEXT NOT NULL,
    district_id TEXT NOT NULL,
    user_id     TEXT NOT NULL,
    PRIMARY KEY (role, district_id, user_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS user_roles_any_district ON user_roles(role, user_id);

-- The persona pickers' view of people (login page, Schoology switcher, search).
CREATE TABLE IF NOT EXISTS people (
    user_id     TEXT NOT NULL,              -- unique: people_user
    district_id TEXT NOT NULL,
    school_id   TEXT NOT NULL,              -- first school ('' when none): the picker's group
    role        TEXT NOT NULL,
    name        TEXT NOT NULL,              -- "First Last" as shown
    title       TEXT,
    sort_key    TEXT NOT NULL,              -- folded "last\0first" (case/accent-insensitive)
    search_key  TEXT NOT NULL               -- folded "first middle last email id"
);
CREATE UNIQUE INDEX IF NOT EXISTS people_user ON people(user_id);
-- Who is at a school (teachers have several), teachers first, by name: one index range.
CREATE TABLE IF NOT EXISTS school_people (
    school_id TEXT NOT NULL,                -- '' for people without a school
    rank      INTEGER NOT NULL,             -- 0 teacher, 1 student, 2 anyone else
    sort_key  TEXT NOT NULL,
    user_id   TEXT NOT NULL,
    PRIMARY KEY (school_id, rank, sort_key, user_id)
) WITHOUT ROWID;

-- Clever's v2 ids of users who are not students, one per role (v3 ids differ for them;
-- Clever's v3 upgrade guide; v2 kept a teacher and a school admin as two records), filled at
-- roster load: roles.<role>.legacy_id when the roster gives one, else derived from the v3 id
-- (simulator.ids.legacy_role_ids).  Students keep one id: no row.
CREATE TABLE IF NOT EXISTS legacy_ids (
    legacy_id TEXT PRIMARY KEY,
    user_id   TEXT NOT NULL,
    role      TEXT NOT NULL,
    UNIQUE (user_id, role)
);

-- Courses (optional in a roster): sections name theirs in ``course``.
CREATE TABLE IF NOT EXISTS courses (
    id          TEXT PRIMARY KEY,
    district_id TEXT NOT NULL,
    data        TEXT NOT NULL
);

CREATE TABLE IF NOT EXISTS sections (
    n           INTEGER PRIMARY KEY,
    id          TEXT NOT NULL,
    district_id TEXT NOT NULL,
    school_id   TEXT NOT NULL,
    data        TEXT NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS sections_id ON sections(id);
CREATE INDEX IF NOT EXISTS sections_district ON sections(district_id, id);
-- The data API's nested paths: a school's and a course's sections (a term's sections are
-- most of the district's, read whole either way).
CREATE INDEX IF NOT EXISTS sections_school ON sections(school_id, id);
CREATE INDEX IF NOT EXISTS sections_course ON sections(json_extract(data, '$.course'));

-- WITHOUT ROWID: the key is the row; role before the user, so a section's students are one
-- range (grade checks). Integer keys (sections.n, users.n): the table and its index are a
-- sixth of what the 24-character ids took, and the roster load derives the rows in SQL from
-- the sections' stored JSON (store.finish_roster); reads join back to the ids.
CREATE TABLE IF NOT EXISTS section_members (
    section_n INTEGER NOT NULL,             -- sections.n
    role      TEXT NOT NULL,                -- 'teacher' or 'student'
    user_n    INTEGER NOT NULL,             -- users.n
    PRIMARY KEY (section_n, role, user_n)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS section_members_user ON section_members(user_n, section_n);

CREATE TABLE IF NOT EXISTS apps (
    client_id       TEXT PRIMARY KEY,
    client_secret   TEXT NOT NULL,
    name            TEXT NOT NULL,
    redirect_uris   TEXT NOT NULL,          -- JSON list, first = primary
    assignments_url TEXT,
    scopes          TEXT NOT NULL,          -- JSON list
    districts       TEXT NOT NULL,          -- JSON list of district ids the app is connected to
    created         TEXT NOT NULL
);

CREATE TABLE IF NOT EXISTS tokens (
    access_token TEXT PRIMARY KEY,
    kind         TEXT NOT NULL CHECK (kind IN ('il', 'district')),
    id           TEXT NOT NULL,             -- 24-hex record id (district tokens are listed by it)
    client_id    TEXT NOT NULL,
    district_id  TEXT NOT NULL,
    user_id      TEXT,                      -- NULL for district-app tokens
    scopes       TEXT NOT NULL,
    created      TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS tokens_client ON tokens(client_id, kind, district_id);

CREATE TABLE IF NOT EXISTS auth_codes (
    code         TEXT PRIMARY KEY,
    client_id    TEXT NOT NULL,
    user_id      TEXT NOT NULL,
    redirect_uri TEXT NOT NULL,             -- the exchange must repeat it (a token: the app's scopes)
    expires_at   REAL NOT NULL,
    used_at      REAL
);
CREATE INDEX IF NOT EXISTS auth_codes_expiry ON auth_codes(expires_at);  -- the purge on insert

-- One current grade per (app, student, assignmentID); every accepted POST in grade_history.
CREATE TABLE IF NOT EXISTS grades (
    id            TEXT PRIMARY KEY,
    client_id     TEXT NOT NULL,
    user_id       TEXT NOT NULL,
    assignment_id TEXT NOT NULL,
    district_id   TEXT NOT NULL,
    version       INTEGER NOT NULL,
    record        TEXT NOT NULL,            -- JSON grade record as answered to the partner
    created       TEXT NOT NULL,
    updated       TEXT NOT NULL,
    seq           INTEGER NOT NULL,         -- global write order, for wait-for-grade
    UNIQUE (client_id, user_id, assignment_id)
);
-- No index on grades holds seq: an overwrite changes seq, and each index holding it had two
-- entries rewritten on every grade POST (the old entry's page and the newest one's), ~2 of
-- the ~7 pages a grade's COMMIT wrote to the WAL. Listings by student or assignment sort
-- their rows (a student has a few grades, an assignment one per student); the write order
-- (after_seq, the live gradebook, MAX(seq)) is read from grade_writes below.
DROP INDEX IF EXISTS grades_assignment;   -- was (client_id, assignment_id): assignment_id alone missed it
DROP INDEX IF EXISTS grades_assignment_seq;
DROP INDEX IF EXISTS grades_seq;
CREATE INDEX IF NOT EXISTS grades_user ON grades(user_id);
CREATE INDEX IF NOT EXISTS grades_by_assignment ON grades(assignment_id);

-- The write order: one row per current grade (the seq of its latest write), appended by the
-- triggers below whoever writes grades (a POST, a snapshot load, a bulk load), so always
-- true. A grade is in the order at its current seq only: an overwrite moves its row (the
-- old seq's row is deleted), so a listing in write order never steps over stale rows (with
-- them, /_sim/grades?limit=50 read every overwrite ever made before its first current grade:
-- a soak's CPU per request grew x1.55 in 11 min). A bulk clear of grades clears it too.
CREATE TABLE IF NOT EXISTS grade_writes (
    seq           INTEGER PRIMARY KEY,
    grade_id      TEXT NOT NULL
);
-- A new grade also appends its first version to grade_history here, and an overwrite (a
-- grade POST for a grade that exists: the only UPDATE of seq) its new version, so a grade
-- POST's write is one statement (store.Store._write_alone). A snapshot load, whose history
-- is the snapshot's own, takes back the rows this wrote for its grades (StateLoad.add_grades).
DROP TRIGGER IF EXISTS grade_writes_insert;  -- an earlier form: the write order only
CREATE TRIGGER IF NOT EXISTS grade_inserted AFTER INSERT ON grades BEGIN
    INSERT OR REPLACE INTO grade_writes(seq, grade_id) VALUES (NEW.seq, NEW.id);
    INSERT INTO grade_history(grade_id, version, record, received_at)
        VALUES (NEW.id, NEW.version, NEW.record, NEW.updated);
END;
DROP TRIGGER IF EXISTS grade_writes_update;
DROP TRIGGER IF EXISTS grade_overwritten;  -- an earlier form kept the old seq's row
CREATE TRIGGER grade_overwritten AFTER UPDATE OF seq ON grades BEGIN
    DELETE FROM grade_writes WHERE seq = OLD.seq;
    INSERT OR REPLACE INTO grade_writes(seq, grade_id) VALUES (NEW.seq, NEW.id);
    INSERT INTO grade_history(grade_id, version, record, received_at)
        VALUES (NEW.id, NEW.version, NEW.record, NEW.updated);
END;

CREATE TABLE IF NOT EXISTS grade_history (
    seq           INTEGER PRIMARY KEY,      -- rowid (no AUTOINCREMENT: one less write per POST)
    grade_id      TEXT NOT NULL REFERENCES grades(id) ON DELETE CASCADE,
    version       INTEGER NOT NULL,
    record        TEXT NOT NULL,
    received_at   TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS grade_history_grade ON grade_history(grade_id, version);

-- Schoology assignments that a teacher created from a partner's assignment.
CREATE TABLE IF NOT EXISTS schoology_assignments (
    id            TEXT PRIMARY KEY,
    section_id    TEXT NOT NULL,
    client_id     TEXT NOT NULL,
    assignment_id TEXT NOT NULL,            -- the partner's assignment id
    data          TEXT NOT NULL,            -- name, description, standards, grading settings
    created       TEXT NOT NULL,
    UNIQUE (section_id, client_id, assignment_id)
);
CREATE INDEX IF NOT EXISTS schoology_assignments_partner ON schoology_assignments(client_id, assignment_id);
