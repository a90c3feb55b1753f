//! The demo's shared cast: one deterministic set of people, hires and deliberate anomalies that every
//! vendor sandbox renders in its own shape, so cross-system joins in the demo find real answers.

use chrono::{DateTime, Datelike, Duration, NaiveDate, Utc, Weekday};

use crate::wire::mix;

pub(crate) const CLIENTS: [&str; 6] = [
    "Acme Logistics",
    "Northwind Health",
    "Globex Retail",
    "Initech Insurance",
    "Umbrella Travel",
    "Stark Utilities",
];
const FIRST: [&str; 20] = [
    "Ana", "Ben", "Chloe", "Dev", "Elena", "Farid", "Grace", "Hugo", "Ines", "Jamal", "Kira",
    "Liam", "Maya", "Noah", "Olga", "Pablo", "Quinn", "Rosa", "Sami", "Tara",
];
const LAST: [&str; 20] = [
    "Garcia", "Okafor", "Nguyen", "Muller", "Rossi", "Kowalski", "Haddad", "Silva", "Tanaka",
    "Byrne", "Larsen", "Moreau", "Patel", "Novak", "Costa", "Ibrahim", "Walsh", "Sato", "Berg",
    "Quispe",
];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Role {
    Supervisor,
    BackOffice,
    Agent,
    /// Applied but was not hired (rejected or still in process).
    Candidate,
}

pub(crate) struct Person {
    pub idx: usize,
    pub first: &'static str,
    pub last: &'static str,
    /// Canonical lower-case address; vendors may render it with other casing or whitespace.
    pub email: String,
    pub role: Role,
    /// Greenhouse application status: `hired`, `rejected` or `in_process`.
    pub status: &'static str,
    pub client: &'static str,
    pub team: &'static str,
    /// Index of this person's supervisor.
    pub supervisor: Option<usize>,
    pub hire_date: Option<NaiveDate>,
    /// Hourly rate, or annual salary for supervisors.
    pub rate: f64,
    /// Placement fee invoiced to the client.
    pub fee: f64,
}

pub(crate) struct World {
    pub people: Vec<Person>,
    /// Hired people whose placement was never invoiced.
    pub uninvoiced: Vec<usize>,
    /// Hired people whose invoice is past due and still unpaid.
    pub unpaid: Vec<usize>,
    /// A hire who was never set up in payroll.
    pub unrostered: usize,
    /// A rejected applicant who is on payroll anyway ("paid but never hired").
    pub ghost: usize,
    /// Agents paid for hours that differ from their logged hours in the latest period, and by how much.
    pub mismatch: Vec<(usize, f64)>,
    /// Agent whose CSAT is low in weeks 0, 1 and 3 of the last four.
    pub low_csat: usize,
    /// Back-office worker whose QA average misses the objective.
    pub quality_miss: usize,
    /// Three agents hired for one client on one Monday (a cohort), whose
    /// invoices predate the `Placement ID` custom field: they pair by
    /// client, date and amount.
    pub cohort: Vec<usize>,
    /// An agent whose payroll e-mail was keyed with a tab, capitals and a
    /// non-breaking space.
    pub tabbed: usize,
    /// A hire on the payroll roster whom no payroll ever paid.
    pub never_paid: usize,
}

/// The sandbox's "today": all data is dated before it.
pub(crate) fn anchor() -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 11, 2).expect("valid anchor")
}

/// First day of the latest complete two-week pay period (Mon 2026-10-19 to Sun 11-01).
pub(crate) fn latest_period_start() -> NaiveDate {
    anchor() - Duration::days(14)
}

/// Monday of week `w` of the last four complete weeks (0 = oldest, 2026-10-05).
pub(crate) fn week_start(w: usize) -> NaiveDate {
    anchor() - Duration::days(28 - 7 * w as i64)
}

/// A UTC instant `secs` seconds after midnight of `day`.
pub(crate) fn at(day: NaiveDate, secs: i64) -> DateTime<Utc> {
    day.and_hms_opt(0, 0, 0).expect("midnight").and_utc() + Duration::seconds(secs)
}

pub(crate) fn is_weekday(day: NaiveDate) -> bool {
    !matches!(day.weekday(), Weekday::Sat | Weekday::Sun)
}

/// Deterministic v4-looking UUID for entity `i` in namespace `ns`.
pub(crate) fn uuid(ns: u64, i: u64) -> String {
    let (a, b) = (mix(ns, i), mix(i, ns));
    let tail = b & 0xffff_ffff_ffff;
    format!(
        "{:08x}-{:04x}-4{:03x}-a{:03x}-{tail:012x}",
        a >> 32,
        a & 0xffff,
        (b >> 52) & 0xfff,
        (b >> 40) & 0xfff
    )
}

impl World {
    /// Builds `n` people (at least 30, so every anomaly has someone to land on).
    pub fn new(n: usize) -> World {
        let n = n.max(30);
        // Four in five applicants were hired; the rest are rejected or still in process.
        let hired: Vec<usize> = (0..n).filter(|p| p % 5 != 4).collect();
        let spacing = (360 / hired.len()).max(1) as i64;
        let people: Vec<Person> = (0..n)
            .map(|p| {
                let (first, last) = (FIRST[p % 20], LAST[(p + p / 20) % 20]);
                let k = hired.iter().position(|&h| h == p);
                let role = match k {
                    None => Role::Candidate,
                    Some(0..=2) => Role::Supervisor,
                    Some(3..=12) => Role::BackOffice,
                    Some(_) => Role::Agent,
                };
                let (team, supervisor) = match (role, k.unwrap_or(0)) {
                    (Role::Supervisor, k) => (["Phones A", "Phones B", "Back Office"][k], None),
                    (Role::BackOffice, _) => ("Back Office", Some(hired[2])),
                    (Role::Agent, k) if k % 2 == 1 => ("Phones A", Some(hired[0])),
                    (Role::Agent, _) => ("Phones B", Some(hired[1])),
                    (Role::Candidate, _) => ("", None),
                };
                // Hires are spread over the past year, each starting on a Monday.
                let hire_date = k.map(|k| {
                    let d = anchor() - Duration::days(380 - k as i64 * spacing);
                    d + Duration::days((7 - d.weekday().num_days_from_monday() as i64) % 7)
                });
                let rate = match role {
                    Role::Supervisor => 68_000.0 + 2_000.0 * k.unwrap_or(0) as f64,
                    Role::BackOffice => 21.0 + (p % 4) as f64 * 0.5,
                    Role::Agent => 18.5 + (p % 6) as f64 * 0.75,
                    Role::Candidate => 0.0,
                };
                Person {
                    idx: p,
                    first,
                    last,
                    email: format!("{first}.{last}@mail.example").to_lowercase(),
                    role,
                    status: if k.is_some() {
                        "hired"
                    } else if p % 10 == 4 {
                        "rejected"
                    } else {
                        "in_process"
                    },
                    client: CLIENTS[k.unwrap_or(p) % CLIENTS.len()],
                    team,
                    supervisor,
                    hire_date,
                    rate,
                    fee: 3_000.0 + (mix(p as u64, 1) % 20) as f64 * 125.0,
                }
            })
            .collect();
        let of_role =
            |r: Role| people.iter().filter(|p| p.role == r).map(|p| p.idx).collect::<Vec<_>>();
        let (agents, back_office) = (of_role(Role::Agent), of_role(Role::BackOffice));
        // The back-office supervisor: salaried, so no contact-center hours
        // to compare with — only "was this hire ever paid" catches it.
        let never_paid = of_role(Role::Supervisor)[2];
        // Anomalies land on distinct people so each demo finding has a single cause.
        let rejected = people.iter().find(|p| p.status == "rejected").map_or(0, |p| p.idx);
        // The ghost is paid like an agent.
        let mut people = people;
        people[rejected].rate = 19.25;
        // Agents no other anomaly uses (2, 3, 5, 7 and 9 are taken).
        let cohort = vec![agents[4], agents[6], agents[8]];
        let (client, start) = (people[cohort[0]].client, people[cohort[0]].hire_date);
        for &c in &cohort[1..] {
            people[c].client = client;
            people[c].hire_date = start;
        }
        World {
            cohort,
            tabbed: agents[10],
            never_paid,
            uninvoiced: vec![back_office[4], agents[7]],
            unpaid: vec![back_office[6], agents[9]],
            unrostered: back_office[8],
            ghost: rejected,
            mismatch: vec![(agents[2], 6.0), (agents[5], -4.5)],
            low_csat: agents[3],
            quality_miss: back_office[1],
            people,
        }
    }

    pub fn with_role(&self, role: Role) -> impl Iterator<Item = &Person> {
        self.people.iter().filter(move |p| p.role == role)
    }

    pub fn hired(&self) -> impl Iterator<Item = &Person> {
        self.people.iter().filter(|p| p.role != Role::Candidate)
    }

    /// Payroll's roster: the hires except the unrostered one, plus the ghost.
    pub fn on_payroll(&self) -> impl Iterator<Item = &Person> {
        self.people.iter().filter(|p| {
            (p.role != Role::Candidate && p.idx != self.unrostered) || p.idx == self.ghost
        })
    }

    /// The day payroll started paying `p` (the ghost: twelve weeks before the anchor).
    pub fn payroll_start(&self, p: &Person) -> NaiveDate {
        p.hire_date.unwrap_or(anchor() - Duration::days(84))
    }

    /// Hours an hourly worker was logged in on `day` (0 on weekends, before hire, or from the anchor on).
    pub fn hours_on(&self, p: &Person, day: NaiveDate) -> f64 {
        let hourly = matches!(p.role, Role::Agent | Role::BackOffice);
        if !hourly || !is_weekday(day) || day >= anchor() || p.hire_date.is_none_or(|h| day < h) {
            return 0.0;
        }
        match mix(p.idx as u64, day.num_days_from_ce() as u64) % 10 {
            0 => 6.0,
            1 | 2 => 7.5,
            _ => 8.0,
        }
    }

    /// Hours payroll paid for the 14-day period starting `start`: the logged hours, except for the
    /// deliberate mismatches in the latest period.
    pub fn paid_hours(&self, p: &Person, start: NaiveDate) -> f64 {
        if p.idx == self.ghost {
            // Nobody logs the ghost's time; payroll pays a full period regardless.
            return 80.0;
        }
        let logged: f64 = (0..14).map(|d| self.hours_on(p, start + Duration::days(d))).sum();
        let skew = self.mismatch.iter().find(|(i, _)| *i == p.idx).map_or(0.0, |(_, d)| *d);
        logged + if start == latest_period_start() { skew } else { 0.0 }
    }

    /// CSAT for the `call`-th call of week `week` (0..4), or None when the customer skipped the survey.
    pub fn csat(&self, p: &Person, week: usize, call: u64) -> Option<u8> {
        let h = mix(p.idx as u64 * 1_000 + week as u64, call);
        if h % 5 >= 3 {
            return None;
        }
        let low = p.idx == self.low_csat && week != 2;
        let pool: &[u8] = if low { &[1, 2, 2, 3] } else { &[3, 4, 4, 5, 5, 5] };
        Some(pool[(h / 5 % pool.len() as u64) as usize])
    }

    /// Weekly QA score (0-100); the objective is an average of at least 80.
    pub fn qa_score(&self, p: &Person, week: usize) -> u8 {
        let base = if p.idx == self.quality_miss { 66 } else { 82 };
        base + (mix(p.idx as u64, week as u64 + 77) % 14) as u8
    }
}
