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

CREATE TABLE IF NOT EXISTS users (
    id          TEXT PRIMARY KEY,
    district_id TEXT NOT NULL,
    role        TEXT NOT NULL CHECK (role IN ('student', 'teacher')),
    data        TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS users_district_role ON users(district_id, role, id);

CREATE TABLE IF NOT EXISTS sections (
    id          TEXT PRIMARY KEY,
    district_id TEXT NOT NULL,
    school_id   TEXT NOT NULL,
    data        TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS sections_district ON sections(district_id, id);

CREATE TABLE IF NOT EXISTS section_members (
    section_id TEXT NOT NULL,
    user_id    TEXT NOT NULL,
    role       TEXT NOT NULL,
    PRIMARY KEY (section_id, user_id, role)
);
CREATE INDEX IF NOT EXISTS section_members_user ON section_members(user_id, section_id);

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
    redirect_uri TEXT NOT NULL,
    scopes       TEXT NOT NULL,
    expires_at   REAL NOT NULL,
    used_at      REAL
);

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
CREATE INDEX IF NOT EXISTS grades_assignment ON grades(client_id, assignment_id);
CREATE INDEX IF NOT EXISTS grades_user ON grades(user_id);
CREATE INDEX IF NOT EXISTS grades_seq ON grades(seq);

CREATE TABLE IF NOT EXISTS grade_history (
    seq           INTEGER PRIMARY KEY AUTOINCREMENT,
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
