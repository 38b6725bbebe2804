//! Entry points for the `fuzz/` targets (and the proptests that feed them random bytes):
//! the parsers of what miners send the console (an HTTP reply) and of what operators write
//! (address ranges, the asset register's CSV files).

/// A miner's HTTP reply, as the console reads it.
pub fn http_reply(bytes: &[u8]) {
    if let Ok(r) = crate::http::parse_reply(bytes) {
        let _ = r.header("www-authenticate");
        if let Ok(v) = serde_json::from_slice::<serde_json::Value>(&r.body) {
            let _ = hashforge_minerapi::axeos::read(&v);
        }
    }
}

/// An operator's address ranges, and a curtailment's action (the CLI's and the API's).
pub fn ranges(bytes: &[u8]) {
    let text = String::from_utf8_lossy(bytes);
    if let Ok(r) = crate::range::Ranges::parse(&text) {
        let _ = r.addresses().take(1000).count();
    }
    if let Ok(a) = crate::curtail::Action::parse(&text) {
        let _ = a.label();
    }
}

/// An operator's files for the asset register: `assets.csv`, `events.csv` (each event
/// also run through a machine's lifecycle), a tariff schedule, a dated price CSV.
pub fn asset_files(bytes: &[u8]) {
    let text = String::from_utf8_lossy(bytes);
    let schedule = crate::tariffs::Schedule::builtin();
    let _ = crate::assets::parse_assets(&text, &schedule);
    if let Ok(events) = crate::assets::parse_events(&text) {
        let start = crate::date::Date::from_days(0);
        let mut track = crate::assets::Track::ordered(1, start);
        for (_, e) in events.iter().take(1000) {
            let _ = track.apply(e);
        }
    }
    if let Ok(s) = crate::tariffs::Schedule::parse(&text) {
        let day = crate::date::Date::from_days(20_000);
        for code in s.codes().iter().take(10) {
            let _ = s.duties(
                code,
                crate::assets::Country::CN,
                day,
                crate::money::Usd::from_dollars(1),
                1,
            );
        }
    }
    if let Ok(series) = crate::economics::Series::parse_csv(&text) {
        let day = crate::date::Date::from_days(20_000);
        let _ = series
            .sums(day, day.plus(10))
            .sum(day.plus(-5), day.plus(20));
    }
    let _ = crate::date::Date::parse_prefix(&text);
    let _ = crate::money::Usd::parse(&text);
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]
        /// Random bytes, and random rows under each file's real header, never panic.
        #[test]
        fn asset_files_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600), pick in 0usize..4) {
            let headers = [
                "serial,maker,model,nameplate_ths,nameplate_w,origin,hts_code,price_usd,order_id,ordered_on\n",
                "serial,event,date,place,shipment,reason,fee_usd_per_unit_day,note\n",
                "hts_code,origin,from,until,layer,rate_pct,min_usd,max_usd,note\n",
                "date,usd_per_mwh\n",
            ];
            let mut input = headers[pick].as_bytes().to_vec();
            input.extend_from_slice(&bytes);
            super::asset_files(&bytes);
            super::asset_files(&input);
        }

        #[test]
        fn rows_of_plausible_fields_never_panic(fields in proptest::collection::vec(
            prop_oneof![
                Just("".to_string()), Just("S1".to_string()), Just("2025-02-29".to_string()),
                Just("2025-03-06".to_string()), Just("-1".to_string()), Just("8543.70.99".to_string()),
                Just("CN".to_string()), Just("customs_hold".to_string()), Just("shipped".to_string()),
                Just("\"".to_string()), Just("99999999999999999999".to_string()), "[ -~]{0,12}",
            ], 0..40)) {
            let mut text = String::from("serial,event,date,place,shipment,reason,fee_usd_per_unit_day,note\n");
            for (i, f) in fields.iter().enumerate() {
                text.push_str(f);
                text.push(if i % 8 == 7 { '\n' } else { ',' });
            }
            super::asset_files(text.as_bytes());
            super::asset_files(text.replacen("serial,event,date,place,shipment,reason,fee_usd_per_unit_day,note", "serial,maker,model,nameplate_ths,nameplate_w,origin,hts_code,price_usd,order_id,ordered_on", 1).as_bytes());
        }
    }
}
