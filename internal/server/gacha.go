package server

import (
	"context"
	"net/http"
	"strings"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	rpv1 "github.com/rewardpool/rewardpool/api/rewardpool/v1"
	"github.com/rewardpool/rewardpool/gacha"
)

// The odds and player endpoints of pools with player rules (README "Gacha
// rules"). Both transports build the same messages; HTTP writes them with
// protojson and snake_case names, like the API's other messages.

// odds returns the odds of user's next single draw in pool.
func (s *Server) odds(ctx context.Context, pool, user string) (*rpv1.Odds, error) {
	e, err := s.pool(pool)
	if err != nil {
		return nil, err
	}
	o, err := e.Odds(ctx, user)
	if err != nil {
		return nil, err
	}
	hash, err := e.RulesHash(ctx)
	if err != nil {
		return nil, err
	}
	out := &rpv1.Odds{Pool: pool, UserId: user, Pity: o.Rule, PityFallback: o.Fallback, ConfigHash: hash,
		Player: playerProto(pool, user, o.Player, user != "" && o.Player.Draws > 0)}
	for _, it := range o.Items {
		out.Items = append(out.Items, &rpv1.ItemOdds{ItemId: it.ItemID, Probability: it.P})
	}
	for _, it := range o.Base {
		out.BaseItems = append(out.BaseItems, &rpv1.ItemOdds{ItemId: it.ItemID, Probability: it.P})
	}
	for _, t := range o.Tiers {
		out.Tiers = append(out.Tiers, &rpv1.TierOdds{Tier: t.Tier, Probability: t.P, FeaturedOnly: t.Featured})
	}
	return out, nil
}

// player returns user's state in pool.
func (s *Server) player(ctx context.Context, pool, user string) (*rpv1.Player, error) {
	e, err := s.pool(pool)
	if err != nil {
		return nil, err
	}
	ps, known, err := e.Player(ctx, user)
	if err != nil {
		return nil, err
	}
	return playerProto(pool, user, ps, known), nil
}

func playerProto(pool, user string, ps gacha.PlayerState, known bool) *rpv1.Player {
	out := &rpv1.Player{Pool: pool, UserId: user, Known: known, Draws: ps.Draws, DrawsToday: ps.DrawsToday}
	for _, p := range ps.Pity {
		out.Pity = append(out.Pity, &rpv1.PityCounter{Tier: p.Tier, Count: p.Count, Hard: p.Hard,
			SoftStart: p.SoftStart, SoftStep: p.SoftStep, FeaturedGuarantee: p.FeaturedGuarantee, FeaturedOwed: p.FeaturedOwed})
	}
	for _, h := range ps.Held {
		out.Held = append(out.Held, &rpv1.HeldItem{ItemId: h.Item, Count: h.Count, MaxPerUser: h.Max})
	}
	return out
}

func (g *grpcService) GetOdds(ctx context.Context, req *rpv1.GetOddsRequest) (*rpv1.Odds, error) {
	o, err := g.s.odds(ctx, req.GetPool(), req.GetUserId())
	return o, toStatus(err)
}

func (g *grpcService) GetPlayer(ctx context.Context, req *rpv1.GetPlayerRequest) (*rpv1.Player, error) {
	p, err := g.s.player(ctx, req.GetPool(), req.GetUserId())
	return p, toStatus(err)
}

var jsonOut = protojson.MarshalOptions{UseProtoNames: true, EmitUnpopulated: true}

func (s *Server) writeProto(w http.ResponseWriter, m proto.Message) {
	b, err := jsonOut.Marshal(m)
	if err != nil {
		s.writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, b)
}

func (s *Server) handleOdds(w http.ResponseWriter, r *http.Request) {
	o, err := s.odds(r.Context(), r.PathValue("pool"), r.URL.Query().Get("user_id"))
	if err != nil {
		s.writeError(w, err)
		return
	}
	s.writeProto(w, o)
}

func (s *Server) handlePlayer(w http.ResponseWriter, r *http.Request) {
	p, err := s.player(r.Context(), r.PathValue("pool"), r.PathValue("user"))
	if err != nil {
		s.writeError(w, err)
		return
	}
	s.writeProto(w, p)
}

// setRules replaces pool's player rules with the JSON form js (package
// gacha), through the pool's log, and returns the rules now in force.
func (s *Server) setRules(ctx context.Context, pool string, js []byte) (gacha.Rules, error) {
	e, err := s.pool(pool)
	if err != nil {
		return gacha.Rules{}, err
	}
	if err := s.replicaErr(); err != nil {
		return gacha.Rules{}, err
	}
	r, err := gacha.Parse(strings.TrimSpace(string(js)))
	if err != nil {
		return gacha.Rules{}, invalid("rules: %v", err)
	}
	// Items the rules name must be in the catalog now.
	st, err := e.State(ctx)
	if err != nil {
		return gacha.Rules{}, err
	}
	ids := make([]string, len(st.Items))
	for i, it := range st.Items {
		ids[i] = it.ID
	}
	if err := r.Validate(ids); err != nil {
		return gacha.Rules{}, invalid("%v", strings.ReplaceAll(err.Error(), "\n", "; "))
	}
	if err := e.SetRules(ctx, r); err != nil {
		return gacha.Rules{}, err
	}
	s.log.Info("rewardpool: rules replaced", "pool", pool, "rules", r.Encode())
	if err := s.awaitReplicas(ctx, pool, e); err != nil {
		return gacha.Rules{}, err
	}
	return e.Rules(ctx)
}

func (s *Server) handleGetRules(w http.ResponseWriter, r *http.Request) {
	e, err := s.pool(r.PathValue("pool"))
	if err == nil {
		var rules gacha.Rules
		if rules, err = e.Rules(r.Context()); err == nil {
			writeJSON(w, http.StatusOK, rulesJSON(rules))
			return
		}
	}
	s.writeError(w, err)
}

// handlePutRules takes the rules' JSON form (README "Gacha rules").
func (s *Server) handlePutRules(w http.ResponseWriter, r *http.Request) {
	b, err := readBody(r)
	if err == nil {
		var rules gacha.Rules
		if rules, err = s.setRules(r.Context(), r.PathValue("pool"), b); err == nil {
			writeJSON(w, http.StatusOK, rulesJSON(rules))
			return
		}
	}
	s.writeError(w, err)
}

// rulesJSON is the rules' JSON form; {} for none.
func rulesJSON(r gacha.Rules) []byte {
	if js := r.Encode(); js != "" {
		return []byte(js)
	}
	return []byte("{}")
}

func (g *grpcService) GetRules(ctx context.Context, req *rpv1.GetRulesRequest) (*rpv1.PoolRules, error) {
	e, err := g.s.pool(req.GetPool())
	if err != nil {
		return nil, toStatus(err)
	}
	rules, err := e.Rules(ctx)
	if err != nil {
		return nil, toStatus(err)
	}
	return &rpv1.PoolRules{Pool: req.GetPool(), RulesJson: string(rulesJSON(rules))}, nil
}

func (g *grpcService) SetRules(ctx context.Context, req *rpv1.PoolRules) (*rpv1.PoolRules, error) {
	rules, err := g.s.setRules(ctx, req.GetPool(), []byte(req.GetRulesJson()))
	if err != nil {
		return nil, toStatus(err)
	}
	return &rpv1.PoolRules{Pool: req.GetPool(), RulesJson: string(rulesJSON(rules))}, nil
}
