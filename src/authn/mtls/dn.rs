//! A certificate's subject as an RFC 4514 string, escaped so that no
//! attribute value can pass for another RDN or attribute.

use std::fmt::Write as _;

use x509_parser::der_parser::asn1_rs::ToDer as _;
use x509_parser::x509::{AttributeTypeAndValue, X509Name};

/// The RFC 4514 string of `name`: RDNs last to first (§2.1) separated by
/// `,`, the attributes of a multi-valued RDN by `+` (§2.2), types by their
/// §3 short names (else the dotted OID), string values escaped (§2.4).
/// A value with no string form is `#` and the hex of its BER encoding,
/// unambiguous since a string value's leading `#` is escaped.
pub(super) fn rfc4514(name: &X509Name<'_>) -> String {
    let rdns: Vec<_> = name.iter_rdn().collect();
    let mut out = String::new();
    for (i, rdn) in rdns.iter().rev().enumerate() {
        if i > 0 {
            out.push(',');
        }
        for (j, atv) in rdn.iter().enumerate() {
            if j > 0 {
                out.push('+');
            }
            attribute(atv, &mut out);
        }
    }
    out
}

fn attribute(atv: &AttributeTypeAndValue<'_>, out: &mut String) {
    let oid = atv.attr_type().to_id_string();
    // RFC 4514 §3's names; anything else as its dotted OID.
    let short = match oid.as_str() {
        "2.5.4.3" => "CN",
        "2.5.4.7" => "L",
        "2.5.4.8" => "ST",
        "2.5.4.10" => "O",
        "2.5.4.11" => "OU",
        "2.5.4.6" => "C",
        "2.5.4.9" => "STREET",
        "0.9.2342.19200300.100.1.25" => "DC",
        "0.9.2342.19200300.100.1.1" => "UID",
        other => other,
    };
    out.push_str(short);
    out.push('=');
    match atv.as_str() {
        Ok(s) => escape(s, out),
        // RFC 4514 §2.4: a value of a type with no string form is `#` and
        // the hex of its whole BER encoding (tag and length included), as
        // OpenSSL's RFC 2253 output writes it.
        Err(_) => {
            out.push('#');
            let der = atv.attr_value().to_der_vec();
            let bytes = der.as_deref().unwrap_or(atv.as_slice());
            for b in bytes {
                let _ = write!(out, "{b:02X}");
            }
        }
    }
}

/// RFC 4514 §2.4: `"`, `+`, `,`, `;`, `<`, `>`, `\` escaped anywhere, a
/// leading space or `#` and a trailing space escaped, NUL as `\00`. `=` is
/// escaped too (§3 allows it), and control characters as hex pairs, so a
/// value never reads as a type and value of its own.
fn escape(value: &str, out: &mut String) {
    let last = value.chars().count().saturating_sub(1);
    for (i, c) in value.chars().enumerate() {
        match c {
            '"' | '+' | ',' | ';' | '<' | '>' | '\\' | '=' => {
                out.push('\\');
                out.push(c);
            }
            ' ' if i == 0 || i == last => out.push_str("\\ "),
            '#' if i == 0 => out.push_str("\\#"),
            c if c.is_ascii_control() => {
                let _ = write!(out, "\\{:02X}", c as u32);
            }
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{escape, rfc4514};

    /// RFC 4514 §2.4: a value with no string form (here a BMPString, which
    /// x509-parser gives no `&str` for) is `#` and its whole BER encoding
    /// in hex: tag 0x1E, length 12, then the UTF-16BE octets.
    #[test]
    fn a_value_without_a_string_form_is_its_ber_in_hex() {
        use rcgen::{CertificateParams, DistinguishedName, DnType, DnValue, KeyPair};
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        let mut dn = DistinguishedName::new();
        dn.push(
            DnType::CommonName,
            DnValue::BmpString("orders".try_into().unwrap()),
        );
        dn.push(DnType::OrganizationName, "Shop");
        params.distinguished_name = dn;
        let cert = params.self_signed(&key).unwrap();
        let (_, parsed) = x509_parser::parse_x509_certificate(cert.der()).unwrap();
        assert_eq!(
            rfc4514(parsed.subject()),
            "O=Shop,CN=#1E0C006F00720064006500720073"
        );
    }

    fn e(s: &str) -> String {
        let mut out = String::new();
        escape(s, &mut out);
        out
    }

    #[test]
    fn values_are_escaped_as_rfc_4514_section_2_4_says() {
        assert_eq!(e("orders"), "orders");
        assert_eq!(e("a,O=Admin"), "a\\,O\\=Admin");
        assert_eq!(e("x+CN=y"), "x\\+CN\\=y");
        assert_eq!(e("\"q\";<>\\"), "\\\"q\\\"\\;\\<\\>\\\\");
        assert_eq!(e(" lead"), "\\ lead");
        assert_eq!(e("trail "), "trail\\ ");
        assert_eq!(e("in side"), "in side");
        assert_eq!(e("#x#"), "\\#x#");
        assert_eq!(e("a\0b\nc"), "a\\00b\\0Ac");
        assert_eq!(e("Zürich"), "Zürich");
        assert_eq!(e(""), "");
    }
}
