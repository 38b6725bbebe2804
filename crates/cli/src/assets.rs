//! `hashforge fleet import` and `hashforge fleet report`: the asset register's files in,
//! its reports out (tables, `--json`, `--csv`). Presentation only: parsing, the lifecycle
//! and the reports live in `hashforge_fleet`.

use std::path::PathBuf;

use clap::Args;
use hashforge_fleet::assets::db::ImportFailure;
use hashforge_fleet::assets::{parse_assets, parse_events, Country};
use hashforge_fleet::date::Date;
use hashforge_fleet::economics::{hashprice_from_difficulty, Market, Series, SUBSIDY_BTC};
use hashforge_fleet::money::Usd;
use hashforge_fleet::reports::{self, Params, WhatIfOrder};
use hashforge_fleet::store::Store;
use hashforge_fleet::tariffs::{default_origins, Schedule};

/// The fleet database every `hashforge fleet` subcommand takes.
#[derive(Args, Clone)]
pub struct DatabaseArg {
    /// The fleet database: sqlite://FILE or postgres://USER:PASS@HOST/DB.
    #[arg(
        long,
        value_name = "URL",
        env = "HASHFORGE_FLEET_DATABASE",
        default_value = "sqlite://hashforge-fleet/fleet.db"
    )]
    pub database: String,
}

#[derive(Args)]
pub struct ImportArgs {
    /// An assets.csv: serial,maker,model,nameplate_ths,nameplate_w,origin,hts_code,price_usd,order_id,ordered_on
    /// (then optional columns: currency, firmware, mac, control_board, psu, hash_boards).
    #[arg(long, value_name = "FILE")]
    assets: Option<PathBuf>,
    /// An events.csv: serial,event,date,place,shipment,reason,fee_usd_per_unit_day,note.
    /// Imported after --assets when both are given.
    #[arg(long, value_name = "FILE")]
    events: Option<PathBuf>,
    /// A tariff schedule instead of the built-in one (its HTS codes are the known ones).
    #[arg(long, value_name = "FILE")]
    tariffs: Option<PathBuf>,
    #[command(flatten)]
    db: DatabaseArg,
}

#[derive(Args)]
pub struct MatchArgs {
    /// JSON: `matched` and `unordered`, each a list of `site`, `ip`, `make`, `model`,
    /// `serial`, `mac`, `asset`, `matched_by`.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    db: DatabaseArg,
}

#[derive(Args)]
pub struct ReportArgs {
    /// customs, tariffs, repairs, vendors, economics or leadtimes.
    #[arg(value_parser = reports::NAMES)]
    name: String,
    /// JSON with the keys the README documents.
    #[arg(long, conflicts_with = "csv")]
    json: bool,
    /// The report's main table as CSV.
    #[arg(long)]
    csv: bool,
    /// The day to read the report on (YYYY-MM-DD) [default: today].
    #[arg(long, value_name = "DATE")]
    at: Option<String>,
    #[command(flatten)]
    market: MarketArgs,
    /// Economics: one row per machine too (JSON `machines`).
    #[arg(long)]
    per_machine: bool,
    /// Tariffs what-if: the model of a planned order.
    #[arg(long, value_name = "MODEL", requires_all = ["what_if_units", "what_if_price"])]
    what_if_model: Option<String>,
    /// Tariffs what-if: how many machines.
    #[arg(long, value_name = "N")]
    what_if_units: Option<u64>,
    /// Tariffs what-if: the price of one machine, in USD.
    #[arg(long, value_name = "USD")]
    what_if_price: Option<String>,
    /// Tariffs what-if: its HTS code.
    #[arg(long, value_name = "CODE", default_value = "8543.70.99")]
    what_if_hts: String,
    /// Tariffs what-if: the origins to compare.
    #[arg(long, value_name = "CC,CC", default_value = "US,MY,ID,TH,CN")]
    what_if_origins: String,
    #[command(flatten)]
    db: DatabaseArg,
}

/// Prices the reports are computed with.
#[derive(Args, Clone, Default)]
pub struct MarketArgs {
    /// Hashprice in USD per PH/s per day (e.g. 45).
    #[arg(long, value_name = "USD")]
    hashprice: Option<String>,
    /// A dated hashprice CSV (date,usd_per_ph_day).
    #[arg(long, value_name = "FILE", conflicts_with = "hashprice")]
    hashprice_csv: Option<PathBuf>,
    /// Network difficulty, for the hashprice (with --btc-price or --btc-price-csv).
    #[arg(long, value_name = "D", conflicts_with_all = ["hashprice", "hashprice_csv"])]
    difficulty: Option<f64>,
    /// Read the difficulty from a node's getmininginfo (http://HOST:8332).
    #[arg(long, value_name = "URL", conflicts_with = "difficulty")]
    node: Option<String>,
    /// The node's cookie file (default: no authentication unless --node-user).
    #[arg(long, value_name = "FILE")]
    node_cookie: Option<PathBuf>,
    #[arg(long, value_name = "USER")]
    node_user: Option<String>,
    #[arg(long, value_name = "PASSWORD", env = "HASHFORGE_NODE_PASSWORD")]
    node_password: Option<String>,
    /// BTC price in USD.
    #[arg(long, value_name = "USD")]
    btc_price: Option<String>,
    /// A dated BTC price CSV (date,usd).
    #[arg(long, value_name = "FILE", conflicts_with = "btc_price")]
    btc_price_csv: Option<PathBuf>,
    /// Average fees per block in BTC, added to the 3.125 BTC subsidy.
    #[arg(long, value_name = "BTC", default_value_t = 0.0)]
    fees_btc: f64,
    /// Energy price in USD per kWh (flat).
    #[arg(long, value_name = "USD")]
    energy: Option<String>,
    /// A dated (or time-of-use) energy price CSV: date,usd_per_kwh or datetime,usd_per_mwh
    /// (hourly rows are averaged per day).
    #[arg(long, value_name = "FILE", conflicts_with = "energy")]
    energy_csv: Option<PathBuf>,
    /// Difficulty growth per month in percent, for payback.
    #[arg(long, value_name = "PCT", default_value_t = 2.0)]
    growth: f64,
    /// Storage per unit per day for holds whose event named no fee (the rate card), USD.
    #[arg(long, value_name = "USD")]
    storage_rate: Option<String>,
    /// A tariff schedule instead of the built-in one.
    #[arg(long, value_name = "FILE")]
    tariffs: Option<PathBuf>,
}

fn read(path: &PathBuf) -> Result<String, String> {
    std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))
}

fn usd(flag: &str, s: &str) -> Result<Usd, String> {
    Usd::parse_non_negative(s).map_err(|e| format!("--{flag}: {e}"))
}

fn series(path: &PathBuf) -> Result<Series, String> {
    Series::parse_csv(&read(path)?).map_err(|e| format!("{}: {e}", path.display()))
}

/// The tariff schedule: built in, or the operator's file.
pub fn schedule(path: Option<&PathBuf>) -> Result<Schedule, String> {
    match path {
        None => Ok(Schedule::builtin()),
        Some(p) => Schedule::parse(&read(p)?).map_err(|e| format!("{}: {e}", p.display())),
    }
}

impl MarketArgs {
    pub async fn market(&self) -> Result<Market, String> {
        let hashprice = if let Some(h) = &self.hashprice {
            Series::flat(usd("hashprice", h)?)
        } else if let Some(p) = &self.hashprice_csv {
            series(p)?
        } else {
            let difficulty = match (&self.node, self.difficulty) {
                (Some(url), _) => Some(self.node_difficulty(url).await?),
                (None, d) => d,
            };
            let btc = match (&self.btc_price, &self.btc_price_csv) {
                (Some(p), _) => Some(Series::flat(usd("btc-price", p)?)),
                (None, Some(f)) => Some(series(f)?),
                (None, None) => None,
            };
            match (difficulty, btc) {
                (Some(d), Some(btc)) => {
                    let reward = SUBSIDY_BTC + self.fees_btc;
                    let points: Option<Vec<_>> = btc
                        .points()
                        .iter()
                        .map(|(day, price)| {
                            hashprice_from_difficulty(d, reward, *price).map(|h| (*day, h))
                        })
                        .collect();
                    Series::from_points(
                        points.ok_or(
                            "--difficulty must be a positive number and --fees-btc 0 or more",
                        )?,
                    )
                }
                (Some(_), None) => {
                    return Err(
                        "--difficulty needs the BTC price (--btc-price or --btc-price-csv)".into(),
                    )
                }
                (None, _) => Series::default(),
            }
        };
        let energy = match (&self.energy, &self.energy_csv) {
            (Some(e), _) => Series::flat(usd("energy", e)?),
            (None, Some(f)) => series(f)?,
            (None, None) => Series::default(),
        };
        if !self.growth.is_finite() || self.growth <= -99.0 {
            return Err("--growth must be a percentage above -99".into());
        }
        Ok(Market {
            hashprice,
            energy,
            growth_per_month: self.growth / 100.0,
            storage_rate: self
                .storage_rate
                .as_deref()
                .map(|s| usd("storage-rate", s))
                .transpose()?,
        })
    }

    async fn node_difficulty(&self, url: &str) -> Result<f64, String> {
        use hashforge_pool::bitcoind::{Bitcoind, RpcAuth};
        let auth = match (&self.node_user, &self.node_cookie) {
            (Some(user), _) => RpcAuth::UserPass {
                user: user.clone(),
                password: self.node_password.clone().unwrap_or_default(),
            },
            (None, Some(c)) => RpcAuth::Cookie(c.clone()),
            (None, None) => RpcAuth::None,
        };
        let node = Bitcoind::connect(url, auth)
            .await
            .map_err(|e| format!("--node {}: {e}", hashforge_store::redact(url)))?;
        let info = node
            .call("getmininginfo", serde_json::json!([]))
            .await
            .map_err(|e| format!("--node getmininginfo: {e}"))?;
        info["difficulty"]
            .as_f64()
            .filter(|d| *d > 0.0)
            .ok_or_else(|| "--node: getmininginfo has no difficulty".to_string())
    }
}

fn runtime() -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))
}

async fn open(db: &DatabaseArg) -> Result<Store, String> {
    Store::open(&db.database, hashforge_fleet::poll::DEFAULT_SITE)
        .await
        .map_err(|e| format!("--database {}: {e}", hashforge_store::redact(&db.database)))
}

fn failure(path: &std::path::Path, e: ImportFailure) -> String {
    match e {
        ImportFailure::Rows(rows) => format!("{}: {rows}", path.display()),
        ImportFailure::Store(e) => {
            format!("{}: database: {e}; nothing was imported", path.display())
        }
    }
}

pub fn import(a: ImportArgs) -> Result<(), String> {
    if a.assets.is_none() && a.events.is_none() {
        return Err("give --assets FILE and/or --events FILE".into());
    }
    let tariffs = schedule(a.tariffs.as_ref())?;
    runtime()?.block_on(async {
        let store = open(&a.db).await?;
        if let Some(path) = &a.assets {
            let started = std::time::Instant::now();
            let rows = parse_assets(&read(path)?, &tariffs).map_err(|e| format!("{}: {e}", path.display()))?;
            let done = store.import_assets(&rows).await.map_err(|e| failure(path, e))?;
            eprintln!(
                "{}: {} machine(s), {} new, in {:.2} s",
                path.display(),
                done.rows,
                done.machines,
                started.elapsed().as_secs_f64()
            );
        }
        if let Some(path) = &a.events {
            let started = std::time::Instant::now();
            let rows = parse_events(&read(path)?).map_err(|e| format!("{}: {e}", path.display()))?;
            let done = store.import_events(&rows).await.map_err(|e| failure(path, e))?;
            eprintln!(
                "{}: {} event(s) of {} machine(s) ({} customs hold(s), {} repair ticket(s) written) in {:.2} s",
                path.display(),
                done.rows,
                done.machines,
                done.holds,
                done.repairs,
                started.elapsed().as_secs_f64()
            );
        }
        store.close().await;
        Ok(())
    })
}

/// `--at`, or today.
pub fn at_date(at: Option<&str>) -> Result<Date, String> {
    at.map_or(Ok(Date::today()), |s| {
        s.parse().map_err(|e| format!("--at: {e}"))
    })
}

impl ReportArgs {
    async fn params(&self) -> Result<Params, String> {
        let what_if = match (&self.what_if_model, self.what_if_units, &self.what_if_price) {
            (Some(model), Some(units), Some(price)) => {
                let origins = self
                    .what_if_origins
                    .split(',')
                    .map(|c| {
                        Country::parse(c).ok_or_else(|| {
                            format!("--what-if-origins: `{c}` is not an ISO 3166 code")
                        })
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                Some(WhatIfOrder {
                    model: model.clone(),
                    units: units.max(1),
                    unit_price: usd("what-if-price", price)?,
                    hts_code: self.what_if_hts.clone(),
                    origins: if origins.is_empty() {
                        default_origins()
                    } else {
                        origins
                    },
                })
            }
            _ => None,
        };
        Ok(Params {
            at: at_date(self.at.as_deref())?,
            market: self.market.market().await?,
            tariffs: schedule(self.market.tariffs.as_ref())?,
            what_if,
            per_machine: self.per_machine,
        })
    }
}

pub fn report(a: ReportArgs) -> Result<(), String> {
    runtime()?.block_on(async {
        let params = a.params().await?;
        let store = open(&a.db).await?;
        let register = store
            .register_with(reports::parts(&a.name))
            .await
            .map_err(|e| format!("database: {e}"))?;
        store.close().await;
        let Some((json, table)) = reports::by_name(&a.name, &register, &params) else {
            return Err(format!("unknown report `{}`", a.name));
        };
        if a.json {
            println!(
                "{}",
                serde_json::to_string_pretty(&json).unwrap_or_default()
            );
        } else if a.csv {
            print!("{}", table.csv());
        } else {
            print!("{}", table.text());
        }
        Ok(())
    })
}

/// Polled miners matched to the register; the ones nobody ordered are listed.
pub fn match_miners(a: MatchArgs) -> Result<(), String> {
    runtime()?.block_on(async {
        let store = open(&a.db).await?;
        let m = store
            .match_miners()
            .await
            .map_err(|e| format!("database: {e}"))?;
        store.close().await;
        if a.json {
            println!("{}", serde_json::to_string_pretty(&m).unwrap_or_default());
            return Ok(());
        }
        println!(
            "{} polled miner(s) matched to the register, {} nobody ordered",
            m.matched.len(),
            m.unordered.len()
        );
        for x in &m.unordered {
            println!(
                "  {:<10} {:<16} {:<10} {:<12} serial {:<16} MAC {}",
                x.site,
                x.ip,
                x.make,
                x.model,
                x.serial.as_deref().unwrap_or("–"),
                x.mac.as_deref().unwrap_or("–")
            );
        }
        Ok(())
    })
}
