//! The demo's four sandbox vendors — ATS (Greenhouse), accounting
//! (QuickBooks), payroll (Gusto) and contact center (Genesys Cloud) — each the
//! faithful vendor mock from [`crate::vendors`] on its own loopback port,
//! started with records rendered from one deterministic cast of people dated
//! relative to 2026-11-02, with a few deliberate anomalies.

mod accounting;
mod ats;
mod contact_center;
mod payroll;
mod world;

use chrono::{Duration, NaiveDate};

use crate::server::MockServer;
use crate::vendors::genesys::{GenesysHandle, GenesysMock, GenesysMockConfig};
use crate::vendors::greenhouse::{GreenhouseHandle, GreenhouseMock, GreenhouseMockConfig};
use crate::vendors::gusto::{GustoHandle, GustoMock, GustoMockConfig};
use crate::vendors::quickbooks::{
    QuickBooksHandle, QuickBooksMock, QuickBooksMockConfig, TOKEN_PATH,
};
use crate::vendors::MockHandle;
use crate::RequestLog;
use world::{Role, World};

/// Greenhouse: client credentials (HTTP Basic) for this user id (`sub`).
pub const ATS_CLIENT_ID: &str = "conveyor-demo-harvest";
pub const ATS_CLIENT_SECRET: &str = "harvest-demo-secret";
pub const ATS_USER_ID: &str = "4021";
/// QuickBooks: a refresh token (it rotates on every refresh) for this realm.
pub const QBO_CLIENT_ID: &str = "conveyor-demo-qbo";
pub const QBO_CLIENT_SECRET: &str = "qbo-demo-secret";
pub const QBO_REFRESH_TOKEN: &str = "qbo-demo-refresh-token";
pub const QBO_REALM_ID: &str = "9341453050298305";
/// Gusto: a refresh token (posted as JSON with the client id and secret) for this company.
pub const GUSTO_CLIENT_ID: &str = "conveyor-demo-gusto";
pub const GUSTO_CLIENT_SECRET: &str = "gusto-demo-secret";
pub const GUSTO_REFRESH_TOKEN: &str = "gusto-demo-refresh-token";
pub const GUSTO_COMPANY_ID: &str = "7b1b7d2c-5b8e-4a52-9f37-2d8c6e0f1a44";
/// Genesys Cloud: client credentials (HTTP Basic).
pub const GENESYS_CLIENT_ID: &str = "conveyor-demo-genesys";
pub const GENESYS_CLIENT_SECRET: &str = "genesys-demo-secret";

/// How many people the cast has.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SandboxSize {
    /// 30 people.
    Small,
    /// 60 people.
    #[default]
    Default,
    /// 200 people.
    Large,
}

impl SandboxSize {
    pub fn people(self) -> usize {
        match self {
            SandboxSize::Small => 30,
            SandboxSize::Default => 60,
            SandboxSize::Large => 200,
        }
    }
}

/// The answers the demo should find, so its tests can check them. Emails are canonical (lower-case).
#[derive(Clone, Debug)]
pub struct SandboxFacts {
    /// The sandbox's "today"; every record is dated before it.
    pub anchor_date: NaiveDate,
    pub people: usize,
    /// Hired applications. Payroll has as many employees: every hire but one, plus one who was
    /// never hired.
    pub hires: usize,
    /// Greenhouse application ids of hires that have no QuickBooks invoice.
    pub uninvoiced_application_ids: Vec<u64>,
    /// QuickBooks DocNumbers of invoices past due (before the anchor) with their full balance open:
    /// the two planted ones, and any that fell due in the five days before the anchor.
    pub unpaid_invoice_numbers: Vec<String>,
    /// The hire who is not on Gusto's payroll.
    pub hired_not_on_payroll_email: String,
    /// The Gusto employee whose Greenhouse application was rejected.
    pub paid_never_hired_email: String,
    /// First and last day of the latest complete pay period (2026-10-19 to 2026-11-01).
    pub latest_pay_period: (NaiveDate, NaiveDate),
    /// Agents whose Gusto hours differ from their Genesys logged-in time in the latest pay period.
    pub hours_mismatch_emails: Vec<String>,
    /// The agent whose average CSAT is below 3.5 in weeks 1, 2 and 4 of the four weeks before the anchor.
    pub low_csat_agent_email: String,
    /// The ten back-office workers (Genesys department "Back Office", not the supervisor).
    pub back_office_emails: Vec<String>,
    /// The one back-office worker whose average QA score misses the objective of 80.
    pub quality_miss_email: String,
    /// Greenhouse application ids of a cohort hired for one client on one day, invoiced without
    /// the `Placement ID` field: each invoice must pair with one of them, none a duplicate.
    pub cohort_application_ids: Vec<u64>,
    /// The person whose Gusto e-mail carries a tab, capitals and a non-breaking space.
    pub tabbed_payroll_email: String,
    /// On the payroll roster, paid by no payroll (with the unrostered hire: "hired, never paid").
    pub never_paid_email: String,
    /// Payrolls Gusto lists as not processed yet.
    pub unprocessed_payrolls: usize,
    /// Conversations abandoned in the queue (no agent participant).
    pub abandoned_contacts: usize,
}

/// Four running vendor mocks. Dropping it stops them all.
pub struct Sandbox {
    pub ats: MockServer,
    pub accounting: MockServer,
    pub payroll: MockServer,
    pub contact_center: MockServer,
    pub ats_mock: GreenhouseHandle,
    pub accounting_mock: QuickBooksHandle,
    pub payroll_mock: GustoHandle,
    pub contact_center_mock: GenesysHandle,
    pub facts: SandboxFacts,
}

impl Sandbox {
    /// Harvest v3 base: lists at `{ats_base_url}/{candidates|applications|jobs|offers}`.
    pub fn ats_base_url(&self) -> String {
        self.ats.url("/v3")
    }

    /// `POST` client credentials here (the real API has it on a separate auth host).
    pub fn ats_token_url(&self) -> String {
        self.ats.url("/token")
    }

    /// QuickBooks host: query at `{accounting_base_url}/v3/company/{QBO_REALM_ID}/query`.
    pub fn accounting_base_url(&self) -> String {
        self.accounting.base_url()
    }

    pub fn accounting_token_url(&self) -> String {
        self.accounting.url(TOKEN_PATH)
    }

    /// Gusto host: `{payroll_base_url}/v1/companies/{GUSTO_COMPANY_ID}/{employees|payrolls}`.
    pub fn payroll_base_url(&self) -> String {
        self.payroll.base_url()
    }

    pub fn payroll_token_url(&self) -> String {
        self.payroll.url("/oauth/token")
    }

    /// Genesys host: endpoints under `{contact_center_base_url}/api/v2/`.
    pub fn contact_center_base_url(&self) -> String {
        self.contact_center.base_url()
    }

    pub fn contact_center_token_url(&self) -> String {
        self.contact_center.url("/oauth/token")
    }

    /// Every request any of the four mocks received, vendor by vendor.
    pub fn requests(&self) -> Vec<RequestLog> {
        let mut out = self.ats_mock.requests();
        out.extend(self.accounting_mock.requests());
        out.extend(self.payroll_mock.requests());
        out.extend(self.contact_center_mock.requests());
        out
    }
}

/// What the cast plants, for the demo's tests.
fn facts(world: &World) -> SandboxFacts {
    let email = |idx: usize| world.people[idx].email.clone();
    let period = world::latest_period_start();
    SandboxFacts {
        anchor_date: world::anchor(),
        people: world.people.len(),
        hires: world.hired().count(),
        uninvoiced_application_ids: world
            .uninvoiced
            .iter()
            .map(|&i| ats::application_id(i))
            .collect(),
        unpaid_invoice_numbers: accounting::unpaid_doc_numbers(world),
        hired_not_on_payroll_email: email(world.unrostered),
        paid_never_hired_email: email(world.ghost),
        latest_pay_period: (period, period + Duration::days(13)),
        hours_mismatch_emails: world.mismatch.iter().map(|&(i, _)| email(i)).collect(),
        low_csat_agent_email: email(world.low_csat),
        back_office_emails: world.with_role(Role::BackOffice).map(|p| p.email.clone()).collect(),
        quality_miss_email: email(world.quality_miss),
        cohort_application_ids: world.cohort.iter().map(|&i| ats::application_id(i)).collect(),
        tabbed_payroll_email: email(world.tabbed),
        never_paid_email: email(world.never_paid),
        unprocessed_payrolls: 1,
        abandoned_contacts: 20 * contact_center::ABANDONED_PER_DAY,
    }
}

/// The facts of a cast of this size, without starting anything.
pub fn sandbox_facts(size: SandboxSize) -> SandboxFacts {
    facts(&World::new(size.people()))
}

/// Builds the cast and starts the four vendor mocks on ephemeral loopback ports.
pub async fn start_sandbox(size: SandboxSize) -> Sandbox {
    let world = World::new(size.people());
    let (ats, ats_mock) = GreenhouseMock::start_with(
        GreenhouseMockConfig {
            client_id: ATS_CLIENT_ID.into(),
            client_secret: ATS_CLIENT_SECRET.into(),
            user_id: ATS_USER_ID.into(),
            max_per_page: 500,
            ..Default::default()
        },
        ats::records(&world),
    )
    .await;
    let (accounting, accounting_mock) = QuickBooksMock::start_with(
        QuickBooksMockConfig {
            client_id: QBO_CLIENT_ID.into(),
            client_secret: QBO_CLIENT_SECRET.into(),
            realm_id: QBO_REALM_ID.into(),
            refresh_token: QBO_REFRESH_TOKEN.into(),
            ..Default::default()
        },
        accounting::records(&world),
    )
    .await;
    let (payroll, payroll_mock) = GustoMock::start_with(
        GustoMockConfig {
            client_id: GUSTO_CLIENT_ID.into(),
            client_secret: GUSTO_CLIENT_SECRET.into(),
            company_id: GUSTO_COMPANY_ID.into(),
            refresh_token: GUSTO_REFRESH_TOKEN.into(),
            ..Default::default()
        },
        payroll::records(&world),
    )
    .await;
    let (contact_center, contact_center_mock) = GenesysMock::start_with(
        GenesysMockConfig {
            client_id: GENESYS_CLIENT_ID.into(),
            client_secret: GENESYS_CLIENT_SECRET.into(),
            ..Default::default()
        },
        contact_center::records(&world),
    )
    .await;
    Sandbox {
        ats,
        accounting,
        payroll,
        contact_center,
        ats_mock,
        accounting_mock,
        payroll_mock,
        contact_center_mock,
        facts: facts(&world),
    }
}

#[cfg(test)]
mod tests;
