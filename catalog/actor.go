package catalog

import (
	"fmt"
	"slices"
)

// Actor is who makes a change and what it may see (DOMAIN.md: a parent
// reseller sees and manages everything of its sub-resellers; nobody sees
// upward or sideways). Every change a Writer makes is audited under
// Actor.Name, and every row it reads or references must lie in the
// actor's scope: rows outside it are "not found".
//
// The zero scope (no ResellerID, no ClientID) is the operator's: it sees
// everything. An Actor is a value; it is not changed by the writes made
// with it.
type Actor struct {
	// Name is the audit log's actor, such as "token 7 (ops)" or
	// "catalog apply (deploy/demo/catalog.yaml)".
	Name string
	// TokenID is the API token that acts, 0 for none.
	TokenID int64
	// ResellerID scopes the actor to that reseller, read only, and to its
	// Subtree (that reseller and every one below it), read and write.
	ResellerID int64
	Subtree    []int64
	// ClientID scopes the actor to that one client, read only.
	ClientID int64
}

// Operator returns an actor with the operator's scope, audited as name.
func Operator(name string) *Actor { return &Actor{Name: name} }

// IsOperator reports whether a sees everything.
func (a *Actor) IsOperator() bool { return a.ResellerID == 0 && a.ClientID == 0 }

// IsReseller reports whether a is scoped to a reseller's subtree.
func (a *Actor) IsReseller() bool { return a.ResellerID != 0 }

// IsClient reports whether a is scoped to one client.
func (a *Actor) IsClient() bool { return a.ClientID != 0 }

// InSubtree reports whether a may see and manage reseller id.
func (a *Actor) InSubtree(id int64) bool {
	switch {
	case a.IsOperator():
		return true
	case a.IsReseller():
		return slices.Contains(a.Subtree, id)
	}
	return false
}

// unscoped is a with the operator's scope, for the changes a rule makes on
// a's behalf (still audited as a): switching off the accounts of a client a
// deleted, for one.
func (a *Actor) unscoped() *Actor {
	return &Actor{Name: a.Name, TokenID: a.TokenID}
}

// String names the actor and its scope, for logs.
func (a *Actor) String() string {
	switch {
	case a.IsReseller():
		return fmt.Sprintf("%s (reseller %d)", a.Name, a.ResellerID)
	case a.IsClient():
		return fmt.Sprintf("%s (client %d)", a.Name, a.ClientID)
	}
	return a.Name
}
