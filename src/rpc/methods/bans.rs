//! `setban`, `listbanned`, `clearbanned`, in Core's shape. A ban covers an
//! IP address or subnet (`1.2.3.4`, `1.2.3.0/24`, `1.2.3.0/255.255.255.0`,
//! `2001:db8::/32`); it applies to inbound and outbound connections alike
//! and survives restarts.

use ipnet::IpNet;
use serde_json::{Value, json};

use super::{NodeView, type_error};
use crate::engine::{Command, CommandError};
use crate::rpc::{Params, RpcError, codes};

/// Core's default `bantime`: 24 hours.
pub(super) const DEFAULT_BAN_SECS: u64 = 24 * 60 * 60;

/// `setban "subnet" "add|remove" ( bantime absolute )`.
pub(super) fn set_ban(view: &mut NodeView<'_>, params: &Params) -> Result<Value, RpcError> {
    let subnet = match params.get(0, "subnet") {
        Some(Value::String(s)) => parse_subnet(s)?,
        Some(_) => return Err(type_error("subnet", "a string")),
        None => {
            return Err(RpcError::new(
                codes::INVALID_PARAMS,
                "setban needs a subnet",
            ));
        }
    };
    let command = match params.get(1, "command") {
        Some(Value::String(c)) => c.as_str(),
        _ => return Err(type_error("command", "\"add\" or \"remove\"")),
    };
    let command = match command {
        "add" => {
            let bantime = match params.get(2, "bantime") {
                None | Some(Value::Null) => DEFAULT_BAN_SECS,
                Some(v) => v
                    .as_u64()
                    .ok_or_else(|| type_error("bantime", "a number of seconds"))?,
            };
            let absolute = match params.get(3, "absolute") {
                None | Some(Value::Null) => false,
                Some(v) => v
                    .as_bool()
                    .ok_or_else(|| type_error("absolute", "a boolean"))?,
            };
            let bantime = if bantime == 0 {
                DEFAULT_BAN_SECS
            } else {
                bantime
            };
            let until = if absolute {
                bantime
            } else {
                view.now.unix.saturating_add(bantime)
            };
            if until <= view.now.unix {
                return Err(RpcError::new(
                    codes::INVALID_PARAMETER,
                    "Error: Absolute timestamp is in the past",
                ));
            }
            Command::Ban { subnet, until }
        }
        "remove" => Command::Unban(subnet),
        other => {
            return Err(RpcError::new(
                codes::MISC_ERROR,
                format!("unknown command {other:?}: use add or remove"),
            ));
        }
    };
    match view.engine.command(view.now, command) {
        Ok(_) => Ok(Value::Null),
        Err(CommandError::AlreadyBanned) => Err(RpcError::new(
            codes::NODE_ALREADY_ADDED,
            "Error: IP/Subnet already banned",
        )),
        Err(CommandError::NotBanned) => Err(RpcError::new(
            codes::INVALID_IP_OR_SUBNET,
            "Error: Unban failed. Requested address/subnet was not previously manually banned.",
        )),
        Err(e) => Err(RpcError::new(codes::MISC_ERROR, format!("Error: {e}"))),
    }
}

/// `listbanned`.
pub(super) fn list_banned(view: &NodeView<'_>) -> Value {
    let now = view.now.unix;
    Value::Array(
        view.engine
            .bans()
            .iter()
            .filter(|b| now < b.until)
            .map(|b| {
                json!({
                    "address": b.subnet.to_string(),
                    "ban_created": b.created,
                    "banned_until": b.until,
                    "ban_duration": b.until.saturating_sub(b.created),
                    "time_remaining": b.until.saturating_sub(now),
                })
            })
            .collect(),
    )
}

/// `clearbanned`.
pub(super) fn clear_banned(view: &mut NodeView<'_>) -> Result<Value, RpcError> {
    view.engine
        .command(view.now, Command::ClearBans)
        .map(|_| Value::Null)
        .map_err(|e| RpcError::new(codes::MISC_ERROR, format!("Error: {e}")))
}

/// An address (a single-host subnet) or `addr/prefix` or `addr/netmask`.
fn parse_subnet(text: &str) -> Result<IpNet, RpcError> {
    let invalid = || RpcError::new(codes::INVALID_IP_OR_SUBNET, "Error: Invalid IP/Subnet");
    let Some((addr, mask)) = text.split_once('/') else {
        let ip: std::net::IpAddr = text.parse().map_err(|_| invalid())?;
        return Ok(IpNet::from(ip));
    };
    let ip: std::net::IpAddr = addr.parse().map_err(|_| invalid())?;
    if let Ok(prefix) = mask.parse::<u8>() {
        return IpNet::new(ip, prefix).map_err(|_| invalid());
    }
    let netmask: std::net::IpAddr = mask.parse().map_err(|_| invalid())?;
    IpNet::with_netmask(ip, netmask).map_err(|_| invalid())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subnets_are_read_as_core_writes_them() {
        let ok = |s: &str| parse_subnet(s).unwrap().to_string();
        assert_eq!(ok("203.0.113.7"), "203.0.113.7/32");
        assert_eq!(ok("203.0.113.0/24"), "203.0.113.0/24");
        assert_eq!(ok("203.0.113.0/255.255.255.0"), "203.0.113.0/24");
        assert_eq!(ok("2001:db8::/32"), "2001:db8::/32");
        for bad in [
            "example.com",
            "1.2.3.4/33",
            "1.2.3.4/255.0.255.0",
            "x.onion",
        ] {
            let e = parse_subnet(bad).unwrap_err();
            assert_eq!(e.code, codes::INVALID_IP_OR_SUBNET, "{bad}");
        }
    }
}
