//! The device directory: which organisation and shipment a device reports
//! for, and the shipment's temperature range.
//!
//! From the config first; optionally from ledger state (the Device record's
//! organisation and attached shipment, the Shipment's profile), cached with a
//! short lifetime so a slow ledger never stalls ingestion for long.
use crate::config::{GatewayConfig, ShipmentRange};
use crate::ledger::Ledger;
use crate::queue::Route;
use std::collections::HashMap;
use std::sync::RwLock;
use std::time::{Duration, Instant};

/// How long a ledger answer (or its absence) is trusted.
const CACHE_TTL: Duration = Duration::from_secs(30);

/// (organisation, shipment) a device reports for.
type OrgAndShipment = (String, String);

pub struct Directory {
    configured: HashMap<String, (String, String)>,
    configured_ranges: HashMap<String, ShipmentRange>,
    lookup_devices: bool,
    ledger: Option<Ledger>,
    devices: RwLock<HashMap<String, (Instant, Option<OrgAndShipment>)>>,
    ranges: RwLock<HashMap<String, (Instant, Option<ShipmentRange>)>>,
}

impl Directory {
    /// `ledger` is used for lookups; `None` keeps the directory to the config.
    pub fn new(config: &GatewayConfig, ledger: Option<Ledger>) -> Directory {
        Directory {
            configured: config
                .devices
                .iter()
                .map(|(id, d)| (id.clone(), (d.org.clone(), d.shipment.clone())))
                .collect(),
            configured_ranges: config
                .shipments
                .iter()
                .map(|(id, r)| (id.clone(), *r))
                .collect(),
            lookup_devices: config.lookup_unknown_devices,
            ledger,
            devices: RwLock::new(HashMap::new()),
            ranges: RwLock::new(HashMap::new()),
        }
    }

    /// Makes sure `device` (and its shipment's range) is known, asking the
    /// ledger if allowed and the cache is stale. Never fails: an unreachable
    /// ledger just leaves the device unknown / the range unset for now.
    pub async fn prepare(&self, device: &str) {
        let Some(ledger) = &self.ledger else { return };
        let fresh = |at: &Instant| at.elapsed() < CACHE_TTL;
        let mut shipment = self.configured.get(device).map(|(_, s)| s.clone());
        if shipment.is_none() && self.lookup_devices {
            let cached = self.devices.read().ok().and_then(|m| {
                m.get(device)
                    .filter(|(at, _)| fresh(at))
                    .map(|(_, v)| v.clone())
            });
            let entry = match cached {
                Some(entry) => entry,
                None => {
                    let found = match ledger.device(device).await {
                        Ok(Some(d))
                            if !d.get_revoked() && !d.get_attached_shipment_id().is_empty() =>
                        {
                            Some((
                                d.get_org_id().to_string(),
                                d.get_attached_shipment_id().to_string(),
                            ))
                        }
                        Ok(_) => None,
                        Err(e) => {
                            tracing::warn!(error = %e, device, "device lookup failed");
                            None
                        }
                    };
                    if let Ok(mut m) = self.devices.write() {
                        m.insert(device.to_string(), (Instant::now(), found.clone()));
                    }
                    found
                }
            };
            shipment = entry.map(|(_, s)| s);
        }
        let Some(shipment) = shipment else { return };
        if self.configured_ranges.contains_key(&shipment) {
            return;
        }
        let stale = self
            .ranges
            .read()
            .map(|m| !m.get(&shipment).is_some_and(|(at, _)| fresh(at)))
            .unwrap_or(true);
        if stale {
            let range = match ledger.shipment_range(&shipment).await {
                Ok(range) => range,
                Err(e) => {
                    tracing::warn!(error = %e, shipment, "shipment range lookup failed; excursion edges wait for the age flush");
                    None
                }
            };
            if let Ok(mut m) = self.ranges.write() {
                m.insert(shipment, (Instant::now(), range));
            }
        }
    }

    /// The route of `device` as currently known.
    pub fn route(&self, device: &str) -> Option<Route> {
        let (org, shipment) = match self.configured.get(device) {
            Some(found) => found.clone(),
            None => self.devices.read().ok()?.get(device)?.1.clone()?,
        };
        let range = self
            .configured_ranges
            .get(&shipment)
            .copied()
            .or_else(|| self.ranges.read().ok()?.get(&shipment)?.1);
        Some(Route {
            org,
            shipment,
            range,
        })
    }
}
