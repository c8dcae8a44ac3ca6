//! Send-rate slots: the shared token bucket every worker takes its sends from.

use super::Store;
use sea_orm::sea_query::{Expr, OnConflict};
use sea_orm::{ConnectionTrait, DbErr};

impl Store {
    /// Takes up to `want` sends of `provider` from the one-second `slot`, which allows `cap` in
    /// all, across every worker sharing this database. Returns how many were granted (0: the slot
    /// is used up). A compare-and-set on the slot's count, so no lock is held.
    pub async fn take_send_tokens(
        &self,
        provider: &str,
        slot: i64,
        want: u32,
        cap: u32,
    ) -> Result<u32, DbErr> {
        use sea_orm::sea_query::{Alias, Query};
        let (t, p, s, u) = (
            Alias::new("send_rate_slots"),
            Alias::new("provider"),
            Alias::new("slot"),
            Alias::new("used"),
        );
        let backend = self.db.get_database_backend();
        for _ in 0..20 {
            let read = Query::select()
                .column(u.clone())
                .from(t.clone())
                .and_where(Expr::col(p.clone()).eq(provider))
                .and_where(Expr::col(s.clone()).eq(slot))
                .to_owned();
            let used: Option<i64> = match self.db.query_one(backend.build(&read)).await? {
                Some(row) => Some(row.try_get_by_index::<i32>(0).map(i64::from)?),
                None => None,
            };
            let take = (cap as i64 - used.unwrap_or(0)).clamp(0, want as i64);
            if take == 0 {
                return Ok(0);
            }
            let won = match used {
                None => {
                    let insert = Query::insert()
                        .into_table(t.clone())
                        .columns([p.clone(), s.clone(), u.clone()])
                        .values_panic([provider.into(), slot.into(), (take as i32).into()])
                        .on_conflict(
                            OnConflict::columns([p.clone(), s.clone()]).do_nothing().to_owned(),
                        )
                        .to_owned();
                    let won = self.db.execute(backend.build(&insert)).await?.rows_affected() == 1;
                    if won {
                        // A new slot: forget the ones older than a minute.
                        let old = Query::delete()
                            .from_table(t.clone())
                            .and_where(Expr::col(s.clone()).lt(slot - 60))
                            .to_owned();
                        self.db.execute(backend.build(&old)).await?;
                    }
                    won
                }
                Some(old) => {
                    let update = Query::update()
                        .table(t.clone())
                        .value(u.clone(), Expr::col(u.clone()).add(take))
                        .and_where(Expr::col(p.clone()).eq(provider))
                        .and_where(Expr::col(s.clone()).eq(slot))
                        .and_where(Expr::col(u.clone()).eq(old))
                        .to_owned();
                    self.db.execute(backend.build(&update)).await?.rows_affected() == 1
                }
            };
            if won {
                return Ok(take as u32);
            }
        }
        // Heavy contention on one slot: let the caller wait for the next.
        Ok(0)
    }
}
