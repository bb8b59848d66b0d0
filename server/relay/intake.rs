//! Items arriving from peers (bundles, links, radio): authentic and
//! whole, then placed by the relay rules, bounced where refused, and
//! acknowledged, in one transaction.

use super::*;
use crate::domain::PeerId;

impl Relay {
    /// Import one bundle, all or nothing: nothing changes unless the whole
    /// bundle authenticates to its last byte.
    pub async fn import<R: Read + Send + 'static>(&self, mut input: R) -> Result<Imported> {
        self.room()?;
        let (header, input) =
            tokio::task::spawn_blocking(move || Header::read(&mut input).map(|h| (h, input)))
                .await
                .map_err(|e| RelayError::BadItem(format!("import task failed: {e}")))??;
        if header.to != self.identity.public {
            return Err(RelayError::WrongRecipient {
                to: fingerprint(&header.to),
                me: fingerprint(&self.identity.public),
            });
        }
        let Some(peer) = self.store.peer_by_key(&header.from).await? else {
            return Err(RelayError::UnknownSender {
                from: fingerprint(&header.from),
            });
        };
        let private = self.identity.private;
        let limits = self.limits();
        let store = self.store.clone();
        let (items, acks) = tokio::task::spawn_blocking(move || -> Result<_> {
            let mut reader = BundleReader::open(input, &header, &private, limits)?;
            let mut items = Vec::new();
            let mut acks = Vec::new();
            while let Some(rec) = reader.next_record()? {
                match rec {
                    Record::Item(mut item) => {
                        let mut spool = store.spool();
                        spool.write(&item.message)?;
                        let id = item_id(&item.mail_from, &item.rcpts, &spool.hash());
                        if unhex(&id) != Some(item.id) {
                            return Err(RelayError::BadItem(
                                "an item's content id does not match its content".into(),
                            ));
                        }
                        let head = header_section(&item.message).to_vec();
                        item.message = Vec::new();
                        items.push((item, id, spool, head));
                    }
                    Record::Acks(ids) => acks.extend(ids.iter().map(|i| hex(i))),
                    Record::End { .. } => {}
                }
            }
            Ok((items, acks))
        })
        .await
        .map_err(|e| RelayError::BadItem(format!("import task failed: {e}")))??;

        // The bundle is authentic and complete: decide, then commit.
        let n = items.len();
        let arrived = items
            .into_iter()
            .map(|(item, id, spool, head)| Arrived {
                item,
                id,
                spool,
                head,
            })
            .collect();
        let applied = self.admit(&peer, arrived, &acks).await?;
        Ok(Imported {
            peer: peer.name,
            seq: header.seq,
            items: n,
            applied,
        })
    }

    /// Take items that arrived whole and authentic from `peer`, and its
    /// acknowledgements, in one transaction: each item not seen before and
    /// from a sender behind that peer is placed (or bounced); every item
    /// is acknowledged back.
    pub(crate) async fn admit(
        &self,
        peer: &PeerRow,
        items: Vec<Arrived>,
        acks: &[String],
    ) -> Result<ImportApplied> {
        let seen = self
            .store
            .items_seen(&items.iter().map(|a| a.id.clone()).collect::<Vec<_>>())
            .await?;
        let routes = self.rule_routes().await?;
        let peer_domains = peer.domain_list();
        let _guard = self.store.blob_guard().await;
        // Which items are new and allowed; their bodies become blobs at once.
        let n = items.len();
        let mut keep = Vec::with_capacity(n);
        let mut spools = Vec::new();
        let mut planned = Vec::with_capacity(n);
        for (
            Arrived {
                item,
                id,
                spool,
                head,
            },
            seen,
        ) in items.into_iter().zip(seen)
        {
            let allowed =
                self.sender_behind_peer((peer.id, &peer_domains), &routes, &item.mail_from);
            if seen || !allowed {
                if !allowed {
                    tracing::warn!(peer = %peer.name, sender = %item.mail_from, "refused an item whose sender's domain is not behind that peer");
                }
                // Acknowledged again (or refused), stored nowhere.
                planned.push(ImportedItem {
                    item_id: id,
                    place: None,
                    bounce: None,
                });
                continue;
            }
            spools.push(spool);
            keep.push((item, id, head));
        }
        let blobs = self.store.commit_all(spools).await?;
        for ((item, id, head), blob) in keep.into_iter().zip(blobs) {
            let (place, failures) = self.place_item(&item, blob).await?;
            let bounce = if failures.is_empty() {
                None
            } else {
                self.bounce_for(&item.mail_from, &failures, &head).await?
            };
            planned.push(ImportedItem {
                item_id: id,
                place: Some(place),
                bounce,
            });
        }
        let applied = self.store.import_items(peer.id, &planned, acks).await?;
        drop(_guard);
        self.route_pending().await?;
        Ok(applied)
    }

    /// Where an arriving item goes: local INBOXes, onward, and failures.
    pub(crate) async fn place_item(
        &self,
        item: &Item,
        blob: store::StagedBlob,
    ) -> Result<(Placement, Vec<Failure>)> {
        let mut local = Vec::new();
        let mut onward = Vec::new();
        let mut failures = Vec::new();
        // Where each recipient goes is the relay rules' answer; the peer's
        // own card matters only to its senders, checked before.
        let source = Source::Peer {
            id: PeerId(0),
            domains: &[],
            hops: item.hops,
            expired: item.age_ms >= item.lifetime_ms,
        };
        let routes = Routes::default();
        for rcpt in &item.rcpts {
            let refused = |why: rules::Refusal| Failure {
                recipient: rcpt.clone(),
                status: why.status().into(),
                diagnostic: why.to_string(),
            };
            match rules::recipient(source, rcpt, &self.config.domains, &routes) {
                Ok(Place::Local(addr)) => match self.store.account_find(&addr).await? {
                    Some(a) if !local.contains(&a.id()) => local.push(a.id()),
                    Some(_) => {}
                    None => failures.push(Failure {
                        recipient: rcpt.clone(),
                        status: "5.1.1".into(),
                        diagnostic: format!("there is no user {rcpt} on {}", self.config.hub_name),
                    }),
                },
                // Routed after the commit, or waiting for a route until it expires.
                Ok(Place::Onward(_)) => onward.push(rcpt.clone()),
                Err(why) => failures.push(refused(why)),
            }
        }
        let onward = (!onward.is_empty()).then(|| Onward {
            mail_from: item.mail_from.clone(),
            rcpts: onward,
            age_ms: i64::try_from(item.age_ms).unwrap_or(i64::MAX),
            lifetime_ms: i64::try_from(item.lifetime_ms).unwrap_or(i64::MAX),
            hops: i64::from(item.hops) + 1,
        });
        Ok((
            Placement {
                blob,
                local,
                onward,
            },
            failures,
        ))
    }

    /// A bounce to `sender` (none for the null sender), placed locally or
    /// sent back along the routes.
    pub(crate) async fn bounce_for(
        &self,
        sender: &str,
        failures: &[Failure],
        original_header: &[u8],
    ) -> Result<Option<Placement>> {
        if sender.is_empty() {
            return Ok(None);
        }
        let Some(domain) = self.config.domains.first() else {
            return Ok(None);
        };
        let message = bounce::build(&BounceInput {
            domain,
            reporting_mta: &self.config.hub_name,
            sender,
            failures,
            original_header,
            arrived: now(),
            now: time::OffsetDateTime::now_utc(),
        });
        let mut spool = self.store.spool();
        spool.write(&message)?;
        let blob = spool.commit().await?;
        let mut local = Vec::new();
        let mut onward = None;
        match Address::parse(sender) {
            Ok(a) if self.config.domains.contains(a.domain()) => {
                if let Some(acc) = self.store.account_find(&a).await? {
                    local.push(acc.id());
                } else {
                    return Ok(None);
                }
            }
            Ok(_) => {
                onward = Some(Onward {
                    mail_from: String::new(),
                    rcpts: vec![sender.to_string()],
                    age_ms: 0,
                    lifetime_ms: i64::try_from(self.config.lifetime_ms).unwrap_or(i64::MAX),
                    hops: 0,
                })
            }
            Err(_) => return Ok(None),
        }
        Ok(Some(Placement {
            blob,
            local,
            onward,
        }))
    }
}
