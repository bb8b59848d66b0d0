//! Peers and routes: adding peers by card, classic and Internet peers,
//! routes, and giving queued items their next hop.

use super::*;
use crate::domain::PeerId;

impl Relay {
    /// Add a peer from its card; its domains are routed to it unless
    /// another peer has them already. Returns the routes made.
    pub async fn add_peer(
        &self,
        card: &Card,
        name: Option<&str>,
    ) -> Result<(PeerRow, Vec<String>)> {
        let name = name.unwrap_or(&card.name);
        node::check_name(name)?;
        if card.key == self.identity.public {
            return Err(RelayError::BadItem(
                "that is this node's own card: add the card of the other node".into(),
            ));
        }
        if let Some(d) = card
            .domains
            .iter()
            .find(|d| self.config.domains.contains(d))
        {
            return Err(RelayError::BadItem(format!(
                "the card names {d}, a domain of this hub: a peer cannot carry this hub's own domain (give the other hub a domain of its own)"
            )));
        }
        let domains: Vec<String> = card.domains.iter().map(|d| d.to_string()).collect();
        let row = self
            .store
            .peer_add(&NewPeer {
                name,
                public_key: Some(&card.key),
                domains: &domains,
                addresses: &card.addrs,
                nncp_node: None,
            })
            .await?;
        let made = self.route_new_domains(&row, domains).await?;
        Ok((row, made))
    }

    /// Add a classic peer (Exim, Postfix: batch SMTP, no node key) for
    /// `domains`, reached through NNCP node `nncp` if given. Its domains
    /// are routed to it unless already routed. Returns the routes made.
    pub async fn add_classic_peer(
        &self,
        name: &str,
        domains: &[String],
        nncp: Option<&str>,
    ) -> Result<(PeerRow, Vec<String>)> {
        node::check_name(name)?;
        let mut canonical = Vec::new();
        for d in domains {
            let d = Domain::parse(d.trim())
                .map_err(|e| RelayError::BadItem(format!("`{d}` is not a domain: {e}")))?;
            if self.config.domains.contains(&d) {
                return Err(RelayError::BadItem(format!(
                    "{d} is a domain of this hub, not of the peer"
                )));
            }
            canonical.push(d.to_string());
        }
        if canonical.is_empty() {
            return Err(RelayError::BadItem(
                "name at least one mail domain behind the peer".into(),
            ));
        }
        let nncp = nncp.map(str::trim).filter(|n| !n.is_empty());
        if let Some(n) = nncp
            && !super::nncp::node_name_ok(n)
        {
            return Err(RelayError::BadItem(format!(
                "`{n}` is not an NNCP node id or name"
            )));
        }
        let row = self
            .store
            .peer_add(&NewPeer {
                name,
                public_key: None,
                domains: &canonical,
                addresses: &[],
                nncp_node: nncp,
            })
            .await?;
        let made = self.route_new_domains(&row, canonical).await?;
        Ok((row, made))
    }

    /// Make this node a gateway: the Internet becomes peer `name` (a
    /// classic peer without domains) with the default route, so mail for
    /// every domain without a route of its own leaves by SMTP (smarthost
    /// or MX, per the `gateway` settings).
    pub async fn add_internet_peer(&self, name: &str) -> Result<PeerRow> {
        node::check_name(name)?;
        let row = self
            .store
            .peer_add(&NewPeer {
                name,
                public_key: None,
                domains: &[],
                addresses: &[],
                nncp_node: None,
            })
            .await?;
        self.store.route_set("*", row.id).await?;
        self.reroute().await?;
        Ok(row)
    }

    /// Route a new peer's domains to it where no route exists yet.
    pub(crate) async fn route_new_domains(
        &self,
        row: &PeerRow,
        domains: Vec<String>,
    ) -> Result<Vec<String>> {
        let taken: Vec<String> = self
            .store
            .routes()
            .await?
            .into_iter()
            .map(|(d, _, _)| d)
            .collect();
        let mut made = Vec::new();
        for d in domains {
            if !taken.contains(&d) && !self.config.domains.iter().any(|h| h.to_string() == d) {
                self.store.route_set(&d, row.id).await?;
                made.push(d);
            }
        }
        self.reroute().await?;
        Ok(made)
    }

    pub async fn peer(&self, name: &str) -> Result<PeerRow> {
        self.store
            .peer_by_name(name)
            .await?
            .ok_or_else(|| RelayError::NoSuchPeer(name.to_string()))
    }

    /// How a route's domain is stored: canonical, '*' for the default
    /// (also written `default`).
    pub(crate) fn route_key(domain: &str) -> Result<String> {
        let domain = domain.trim();
        if domain == "*" || domain == "default" {
            return Ok("*".into());
        }
        Domain::parse(domain)
            .map(|d| d.to_string())
            .map_err(|e| RelayError::BadItem(format!("`{domain}` is not a domain: {e}")))
    }

    /// Route `domain` ('*' = default) to a peer, and give waiting items
    /// their next hop.
    pub async fn add_route(&self, domain: &str, peer: &str) -> Result<()> {
        let domain = Self::route_key(domain)?;
        let p = self.peer(peer.trim()).await?;
        self.store.route_set(&domain, p.id).await?;
        self.reroute().await?;
        Ok(())
    }

    /// Remove a route; items waiting for its peer follow what routes are
    /// left (or wait for a new one).
    pub async fn remove_route(&self, domain: &str) -> Result<()> {
        if self.store.route_remove(&Self::route_key(domain)?).await? {
            self.reroute().await?;
            Ok(())
        } else {
            Err(RelayError::NoSuchRoute(domain.trim().to_string()))
        }
    }

    /// After a route change: items queued for a peer that the routes no
    /// longer choose, and never handed to any carrier, go to their new next
    /// hop. Items already carried stay with their peer until acknowledged
    /// or expired — moving them could deliver them twice. Returns how many
    /// items moved.
    pub async fn reroute(&self) -> Result<usize> {
        let routes = self.rule_routes().await?;
        let moved: Vec<i64> = self
            .store
            .outbox_untouched()
            .await?
            .into_iter()
            .filter(|row| {
                row.recipients().iter().any(|rcpt| {
                    domain_of(rcpt).and_then(|d| routes.next_hop(&d)) != row.peer_id.map(PeerId)
                })
            })
            .map(|row| row.id)
            .collect();
        let n = if moved.is_empty() {
            0
        } else {
            self.store.outbox_unroute(&moved).await?
        };
        self.route_pending().await?;
        Ok(n)
    }

    /// Remove a peer and its routes; its queued items wait for a new route.
    pub async fn remove_peer(&self, name: &str) -> Result<()> {
        if self.store.peer_remove(name).await? {
            Ok(())
        } else {
            Err(RelayError::NoSuchPeer(name.to_string()))
        }
    }

    /// May `peer` hand this hub mail from `sender`? The relay rules'
    /// answer ([`rules::sender`]): the null sender of a bounce, yes; a
    /// domain this hub hosts, never; otherwise the sender's domain must be
    /// on the peer's card (or list) or routed to it.
    pub(crate) fn sender_behind_peer(
        &self,
        (peer_id, peer_domains): (PeerId, &[String]),
        routes: &Routes,
        sender: &str,
    ) -> bool {
        let source = Source::Peer {
            id: peer_id,
            domains: peer_domains,
            hops: 0,
            expired: false,
        };
        rules::sender(source, sender, &self.config.domains, routes).is_ok()
    }

    /// The routes as the relay rules read them.
    pub(crate) async fn rule_routes(&self) -> Result<Routes> {
        Ok(Routes::new(
            self.store
                .routes()
                .await?
                .into_iter()
                .map(|(domain, peer, _)| (domain, peer)),
        ))
    }

    /// Give every item waiting for a route its next hops. Returns how many
    /// items were routed.
    pub async fn route_pending(&self) -> Result<usize> {
        let rows = self.store.outbox_unrouted().await?;
        if rows.is_empty() {
            return Ok(0);
        }
        let routes = self.rule_routes().await?;
        let mut batch = Vec::new();
        for row in rows {
            let mut by_peer: Vec<(PeerId, Vec<String>)> = Vec::new();
            let mut rest = Vec::new();
            for rcpt in row.recipients() {
                match domain_of(&rcpt).and_then(|d| routes.next_hop(&d)) {
                    Some(peer) => match by_peer.iter_mut().find(|(p, _)| *p == peer) {
                        Some((_, v)) => v.push(rcpt),
                        None => by_peer.push((peer, vec![rcpt])),
                    },
                    None => rest.push(rcpt),
                }
            }
            if by_peer.is_empty() {
                continue;
            }
            let parts: Vec<RoutedPart> = by_peer
                .into_iter()
                .map(|(peer_id, rcpts)| RoutedPart {
                    peer_id,
                    item_id: item_id(&row.mail_from, &rcpts, &row.blob_hash),
                    rcpts,
                })
                .collect();
            batch.push((row.id, parts, rest));
        }
        let routed = batch.iter().map(|(_, p, _)| p.len()).sum();
        self.store.outbox_route(&batch).await?;
        Ok(routed)
    }
}
