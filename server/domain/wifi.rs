//! The rules of an access point's settings (IEEE 802.11 and WPA2), shared
//! by `hub.toml`, the admin pages and the root-run hostapd writer.

/// IEEE 802.11: an SSID is at most 32 octets.
pub const MAX_SSID: usize = 32;

/// An SSID is 1 to [`MAX_SSID`] octets; a control character (a line
/// break) would also end hostapd's configuration line.
pub fn ssid_ok(ssid: &str) -> bool {
    !ssid.is_empty() && ssid.len() <= MAX_SSID && !ssid.chars().any(char::is_control)
}

/// A WPA2 passphrase is 8 to 63 printable ASCII characters.
pub fn passphrase_ok(pass: &str) -> bool {
    (8..=63).contains(&pass.len()) && pass.bytes().all(|b| (0x20..0x7f).contains(&b))
}

/// A regulatory country is the ISO 3166-1 alpha-2 code of a country,
/// in upper case (what hostapd's `country_code` takes).
pub fn country_ok(country: &str) -> bool {
    country.len() == 2
        && country.bytes().all(|b| b.is_ascii_uppercase())
        && isocountry::CountryCode::for_alpha2(country).is_ok()
}

/// Every country as (code, name), by name: the list the pages offer, so
/// nobody types "Ge" for Germany and gets Georgia's radio rules.
pub fn countries() -> Vec<(&'static str, &'static str)> {
    let mut list: Vec<(&'static str, &'static str)> = isocountry::CountryCode::as_array()
        .iter()
        .map(|c| (c.alpha2(), c.name()))
        .collect();
    list.sort_by_key(|(_, name)| name.to_lowercase());
    list
}

/// 2.4 GHz channels 1 to 13.
pub fn channel_ok(channel: i64) -> bool {
    (1..=13).contains(&channel)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rules_hold_at_their_edges() {
        assert!(ssid_ok("a") && ssid_ok(&"s".repeat(32)));
        assert!(!ssid_ok("") && !ssid_ok(&"s".repeat(33)) && !ssid_ok("a\nb"));
        assert!(passphrase_ok("12345678") && passphrase_ok(&"p".repeat(63)));
        assert!(!passphrase_ok("1234567") && !passphrase_ok(&"p".repeat(64)));
        assert!(!passphrase_ok("tab\there-ok"));
        assert!(country_ok("DE") && !country_ok("de") && !country_ok("DEU"));
        assert!(!country_ok("XX") && !country_ok("ZZ"), "not countries");
        let list = countries();
        assert!(list.len() > 240, "{}", list.len());
        assert!(list.contains(&("DE", "Germany")) && list.contains(&("GE", "Georgia")));
        assert!(list.iter().all(|(c, _)| country_ok(c)));
        assert!(channel_ok(1) && channel_ok(13) && !channel_ok(0) && !channel_ok(14));
    }
}
