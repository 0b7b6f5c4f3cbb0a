package stripe

import (
	"sort"

	stripe "github.com/stripe/stripe-go/v85"

	"github.com/sluice-dev/sluice/internal/records"
)

// kind is how a top-level field of an API object becomes a column.
type kind uint8

const (
	kString kind = iota // STRING
	kRef                // STRING: the id of an expandable object (the object's id when expanded)
	kInt                // INT64: amounts, counts
	kFloat              // DOUBLE
	kBool               // BOOLEAN
	kTime               // TIMESTAMP(MICROS,UTC) from unix seconds
	kObject             // JSON: nested objects, hashes (metadata)
	kArray              // JSON: lists
)

// The Parquet types of the kinds.
var (
	parquetString    = records.ParquetType{Physical: records.PhysicalByteArray, Logical: records.LogicalString, Name: "STRING"}
	parquetInt64     = records.ParquetType{Physical: records.PhysicalInt64, Name: "INT64"}
	parquetDouble    = records.ParquetType{Physical: records.PhysicalDouble, Name: "DOUBLE"}
	parquetBoolean   = records.ParquetType{Physical: records.PhysicalBoolean, Name: "BOOLEAN"}
	parquetTimestamp = records.ParquetType{Physical: records.PhysicalInt64, Logical: records.LogicalTimestamp, AdjustedToUTC: true, Name: "TIMESTAMP(MICROS,UTC)"}
	parquetJSON      = records.ParquetType{Physical: records.PhysicalByteArray, Logical: records.LogicalJSON, Name: "JSON"}
)

// parquet is the column type of the kind.
func (k kind) parquet() records.ParquetType {
	switch k {
	case kInt:
		return parquetInt64
	case kFloat:
		return parquetDouble
	case kBool:
		return parquetBoolean
	case kTime:
		return parquetTimestamp
	case kObject, kArray:
		return parquetJSON
	default:
		return parquetString
	}
}

// String is the type as the Stripe API reference names it; inspect shows
// it, and the warehouse records it as the column's source type.
func (k kind) String() string {
	switch k {
	case kRef:
		return "expandable"
	case kInt:
		return "integer"
	case kFloat:
		return "number"
	case kBool:
		return "boolean"
	case kTime:
		return "timestamp"
	case kObject:
		return "object"
	case kArray:
		return "array"
	default:
		return "string"
	}
}

// field is a top-level field of an API object, kept as a column.
type field struct {
	name string
	kind kind
}

// object is an API object type sluice syncs as a table.
//
// The columns are an explicit list of the object's top-level fields as the
// API version stripe-go pins (stripe.APIVersion) returns them, so that
// every batch of a table has the same schema whatever a given object
// carries: a field an object lacks is NULL, and a top-level field not
// listed here (added by a later API version) is ignored until it is added
// to the list. The lists leave out fields the API returns only when
// expanded (customer.sources, charge.refunds, ...), which would always be
// NULL, and payment_intents.client_secret and invoices.confirmation_secret,
// credentials that let whoever holds them confirm a payment: they do not
// belong in a warehouse.
type object struct {
	table  string // the table name in the configuration: "charges"
	object string // the API's object name: "charge"
	path   string // the list endpoint: "/v1/charges"
	// listFilters are parameters every list request sends, so that it
	// returns every object (subscriptions: canceled ones too).
	listFilters [][2]string
	// events are the webhook event types whose data.object is this object;
	// nil when changes to it are not pushed.
	events []stripe.EventType
	fields []field
}

// objects are the supported object types, by table name.
var objects = map[string]*object{}

// objectTables maps API object names to table names.
var objectTables = map[string]string{}

func init() {
	for _, o := range objectList {
		objects[o.table] = o
		objectTables[o.object] = o.table
	}
}

// Tables lists the table names of the supported object types, sorted.
func Tables() []string {
	out := make([]string, 0, len(objects))
	for t := range objects {
		out = append(out, t)
	}
	sort.Strings(out)
	return out
}

// TableForObject returns the table of an API object name ("charge" ->
// "charges"), as webhook events name it in data.object.object.
func TableForObject(object string) (table string, ok bool) {
	table, ok = objectTables[object]
	return table, ok
}

// objectList is every supported object type, sorted by table name. Fields
// are id and created first, then by name.
var objectList = []*object{
	{
		table:  "balance_transactions",
		object: "balance_transaction",
		path:   "/v1/balance_transactions",
		fields: []field{
			{"id", kString},
			{"created", kTime},
			{"amount", kInt},
			{"available_on", kTime},
			{"balance_type", kString},
			{"currency", kString},
			{"description", kString},
			{"exchange_rate", kFloat},
			{"fee", kInt},
			{"fee_details", kArray},
			{"net", kInt},
			{"reporting_category", kString},
			{"source", kRef},
			{"status", kString},
			{"type", kString},
		},
	},
	{
		table:  "charges",
		object: "charge",
		path:   "/v1/charges",
		events: []stripe.EventType{
			stripe.EventTypeChargeCaptured,
			stripe.EventTypeChargeExpired,
			stripe.EventTypeChargeFailed,
			stripe.EventTypeChargePending,
			stripe.EventTypeChargeRefunded,
			stripe.EventTypeChargeSucceeded,
			stripe.EventTypeChargeUpdated,
		},
		fields: []field{
			{"id", kString},
			{"created", kTime},
			{"amount", kInt},
			{"amount_captured", kInt},
			{"amount_refunded", kInt},
			{"application", kRef},
			{"application_fee", kRef},
			{"application_fee_amount", kInt},
			{"balance_transaction", kRef},
			{"billing_details", kObject},
			{"calculated_statement_descriptor", kString},
			{"captured", kBool},
			{"currency", kString},
			{"customer", kRef},
			{"description", kString},
			{"disputed", kBool},
			{"failure_balance_transaction", kRef},
			{"failure_code", kString},
			{"failure_message", kString},
			{"fraud_details", kObject},
			{"livemode", kBool},
			{"metadata", kObject},
			{"on_behalf_of", kRef},
			{"outcome", kObject},
			{"paid", kBool},
			{"payment_intent", kRef},
			{"payment_method", kString},
			{"payment_method_details", kObject},
			{"presentment_details", kObject},
			{"radar_options", kObject},
			{"receipt_email", kString},
			{"receipt_number", kString},
			{"receipt_url", kString},
			{"refunded", kBool},
			{"review", kRef},
			{"shipping", kObject},
			{"source_transfer", kRef},
			{"statement_descriptor", kString},
			{"statement_descriptor_suffix", kString},
			{"status", kString},
			{"transfer", kRef},
			{"transfer_data", kObject},
			{"transfer_group", kString},
		},
	},
	{
		table:  "customers",
		object: "customer",
		path:   "/v1/customers",
		events: []stripe.EventType{
			stripe.EventTypeCustomerCreated,
			stripe.EventTypeCustomerDeleted,
			stripe.EventTypeCustomerUpdated,
		},
		fields: []field{
			{"id", kString},
			{"created", kTime},
			{"address", kObject},
			{"balance", kInt},
			{"business_name", kString},
			{"currency", kString},
			{"customer_account", kString},
			{"default_source", kRef},
			{"delinquent", kBool},
			{"description", kString},
			{"discount", kObject},
			{"email", kString},
			{"individual_name", kString},
			{"invoice_prefix", kString},
			{"invoice_settings", kObject},
			{"livemode", kBool},
			{"metadata", kObject},
			{"name", kString},
			{"next_invoice_sequence", kInt},
			{"phone", kString},
			{"preferred_locales", kArray},
			{"shipping", kObject},
			{"tax_exempt", kString},
			{"test_clock", kRef},
		},
	},
	{
		table:  "disputes",
		object: "dispute",
		path:   "/v1/disputes",
		events: []stripe.EventType{
			stripe.EventTypeChargeDisputeClosed,
			stripe.EventTypeChargeDisputeCreated,
			stripe.EventTypeChargeDisputeFundsReinstated,
			stripe.EventTypeChargeDisputeFundsWithdrawn,
			stripe.EventTypeChargeDisputeUpdated,
		},
		fields: []field{
			{"id", kString},
			{"created", kTime},
			{"amount", kInt},
			{"balance_transactions", kArray},
			{"charge", kRef},
			{"currency", kString},
			{"enhanced_eligibility_types", kArray},
			{"evidence", kObject},
			{"evidence_details", kObject},
			{"is_charge_refundable", kBool},
			{"livemode", kBool},
			{"metadata", kObject},
			{"payment_intent", kRef},
			{"payment_method_details", kObject},
			{"reason", kString},
			{"status", kString},
		},
	},
	{
		table:  "invoices",
		object: "invoice",
		path:   "/v1/invoices",
		events: []stripe.EventType{
			stripe.EventTypeInvoiceCreated,
			stripe.EventTypeInvoiceDeleted,
			stripe.EventTypeInvoiceFinalizationFailed,
			stripe.EventTypeInvoiceFinalized,
			stripe.EventTypeInvoiceMarkedUncollectible,
			stripe.EventTypeInvoiceOverdue,
			stripe.EventTypeInvoiceOverpaid,
			stripe.EventTypeInvoicePaid,
			stripe.EventTypeInvoicePaymentActionRequired,
			stripe.EventTypeInvoicePaymentAttemptRequired,
			stripe.EventTypeInvoicePaymentFailed,
			stripe.EventTypeInvoicePaymentSucceeded,
			stripe.EventTypeInvoiceSent,
			stripe.EventTypeInvoiceUpdated,
			stripe.EventTypeInvoiceVoided,
			stripe.EventTypeInvoiceWillBeDue,
		},
		fields: []field{
			{"id", kString},
			{"created", kTime},
			{"account_country", kString},
			{"account_name", kString},
			{"account_tax_ids", kArray},
			{"amount_due", kInt},
			{"amount_overpaid", kInt},
			{"amount_paid", kInt},
			{"amount_paid_off_stripe", kInt},
			{"amount_remaining", kInt},
			{"amount_shipping", kInt},
			{"application", kRef},
			{"attempt_count", kInt},
			{"attempted", kBool},
			{"auto_advance", kBool},
			{"automatic_tax", kObject},
			{"automatically_finalizes_at", kTime},
			{"billing_reason", kString},
			{"collection_method", kString},
			{"currency", kString},
			{"custom_fields", kArray},
			{"customer", kRef},
			{"customer_account", kString},
			{"customer_address", kObject},
			{"customer_email", kString},
			{"customer_name", kString},
			{"customer_phone", kString},
			{"customer_shipping", kObject},
			{"customer_tax_exempt", kString},
			{"customer_tax_ids", kArray},
			{"default_payment_method", kRef},
			{"default_source", kRef},
			{"default_tax_rates", kArray},
			{"description", kString},
			{"discounts", kArray},
			{"due_date", kTime},
			{"effective_at", kTime},
			{"ending_balance", kInt},
			{"footer", kString},
			{"from_invoice", kObject},
			{"hosted_invoice_url", kString},
			{"invoice_pdf", kString},
			{"issuer", kObject},
			{"last_finalization_error", kObject},
			{"latest_revision", kRef},
			{"lines", kObject},
			{"livemode", kBool},
			{"metadata", kObject},
			{"next_payment_attempt", kTime},
			{"number", kString},
			{"on_behalf_of", kRef},
			{"parent", kObject},
			{"payment_settings", kObject},
			{"period_end", kTime},
			{"period_start", kTime},
			{"post_payment_credit_notes_amount", kInt},
			{"pre_payment_credit_notes_amount", kInt},
			{"receipt_number", kString},
			{"rendering", kObject},
			{"shipping_cost", kObject},
			{"shipping_details", kObject},
			{"starting_balance", kInt},
			{"statement_descriptor", kString},
			{"status", kString},
			{"status_transitions", kObject},
			{"subtotal", kInt},
			{"subtotal_excluding_tax", kInt},
			{"test_clock", kRef},
			{"threshold_reason", kObject},
			{"total", kInt},
			{"total_discount_amounts", kArray},
			{"total_excluding_tax", kInt},
			{"total_pretax_credit_amounts", kArray},
			{"total_taxes", kArray},
			{"webhooks_delivered_at", kTime},
		},
	},
	{
		table:  "payment_intents",
		object: "payment_intent",
		path:   "/v1/payment_intents",
		events: []stripe.EventType{
			stripe.EventTypePaymentIntentAmountCapturableUpdated,
			stripe.EventTypePaymentIntentCanceled,
			stripe.EventTypePaymentIntentCreated,
			stripe.EventTypePaymentIntentPartiallyFunded,
			stripe.EventTypePaymentIntentPaymentFailed,
			stripe.EventTypePaymentIntentProcessing,
			stripe.EventTypePaymentIntentRequiresAction,
			stripe.EventTypePaymentIntentSucceeded,
		},
		fields: []field{
			{"id", kString},
			{"created", kTime},
			{"allowed_payment_method_types", kArray},
			{"amount", kInt},
			{"amount_capturable", kInt},
			{"amount_details", kObject},
			{"amount_received", kInt},
			{"application", kRef},
			{"application_fee_amount", kInt},
			{"automatic_payment_methods", kObject},
			{"canceled_at", kTime},
			{"cancellation_reason", kString},
			{"capture_method", kString},
			{"confirmation_method", kString},
			{"currency", kString},
			{"customer", kRef},
			{"customer_account", kString},
			{"description", kString},
			{"excluded_payment_method_types", kArray},
			{"hooks", kObject},
			{"last_payment_error", kObject},
			{"latest_charge", kRef},
			{"livemode", kBool},
			{"managed_payments", kObject},
			{"metadata", kObject},
			{"next_action", kObject},
			{"on_behalf_of", kRef},
			{"payment_details", kObject},
			{"payment_method", kRef},
			{"payment_method_configuration_details", kObject},
			{"payment_method_options", kObject},
			{"payment_method_types", kArray},
			{"presentment_details", kObject},
			{"processing", kObject},
			{"receipt_email", kString},
			{"review", kRef},
			{"setup_future_usage", kString},
			{"shipping", kObject},
			{"statement_descriptor", kString},
			{"statement_descriptor_suffix", kString},
			{"status", kString},
			{"transfer_data", kObject},
			{"transfer_group", kString},
		},
	},
	{
		table:  "prices",
		object: "price",
		path:   "/v1/prices",
		events: []stripe.EventType{
			stripe.EventTypePriceCreated,
			stripe.EventTypePriceDeleted,
			stripe.EventTypePriceUpdated,
		},
		fields: []field{
			{"id", kString},
			{"created", kTime},
			{"active", kBool},
			{"billing_scheme", kString},
			{"currency", kString},
			{"custom_unit_amount", kObject},
			{"livemode", kBool},
			{"lookup_key", kString},
			{"metadata", kObject},
			{"nickname", kString},
			{"product", kRef},
			{"recurring", kObject},
			{"tax_behavior", kString},
			{"tiers_mode", kString},
			{"transform_quantity", kObject},
			{"type", kString},
			{"unit_amount", kInt},
			{"unit_amount_decimal", kString},
		},
	},
	{
		table:  "products",
		object: "product",
		path:   "/v1/products",
		events: []stripe.EventType{
			stripe.EventTypeProductCreated,
			stripe.EventTypeProductDeleted,
			stripe.EventTypeProductUpdated,
		},
		fields: []field{
			{"id", kString},
			{"created", kTime},
			{"active", kBool},
			{"default_price", kRef},
			{"description", kString},
			{"images", kArray},
			{"livemode", kBool},
			{"marketing_features", kArray},
			{"metadata", kObject},
			{"name", kString},
			{"package_dimensions", kObject},
			{"shippable", kBool},
			{"statement_descriptor", kString},
			{"tax_code", kRef},
			{"unit_label", kString},
			{"updated", kTime},
			{"url", kString},
		},
	},
	{
		table:  "refunds",
		object: "refund",
		path:   "/v1/refunds",
		events: []stripe.EventType{
			stripe.EventTypeChargeRefundUpdated,
			stripe.EventTypeRefundCreated,
			stripe.EventTypeRefundFailed,
			stripe.EventTypeRefundUpdated,
		},
		fields: []field{
			{"id", kString},
			{"created", kTime},
			{"amount", kInt},
			{"balance_transaction", kRef},
			{"charge", kRef},
			{"currency", kString},
			{"customer", kRef},
			{"customer_account", kString},
			{"description", kString},
			{"destination_details", kObject},
			{"failure_balance_transaction", kRef},
			{"failure_reason", kString},
			{"instructions_email", kString},
			{"metadata", kObject},
			{"next_action", kObject},
			{"payment_intent", kRef},
			{"payment_method", kRef},
			{"pending_reason", kString},
			{"presentment_details", kObject},
			{"reason", kString},
			{"receipt_number", kString},
			{"source_transfer_reversal", kRef},
			{"status", kString},
			{"transfer_reversal", kRef},
		},
	},
	{
		table:  "subscriptions",
		object: "subscription",
		path:   "/v1/subscriptions",
		// Without status=all, the list leaves out canceled subscriptions.
		listFilters: [][2]string{{"status", "all"}},
		events: []stripe.EventType{
			stripe.EventTypeCustomerSubscriptionCreated,
			stripe.EventTypeCustomerSubscriptionDeleted,
			stripe.EventTypeCustomerSubscriptionPaused,
			stripe.EventTypeCustomerSubscriptionPendingUpdateApplied,
			stripe.EventTypeCustomerSubscriptionPendingUpdateExpired,
			stripe.EventTypeCustomerSubscriptionResumed,
			stripe.EventTypeCustomerSubscriptionTrialWillEnd,
			stripe.EventTypeCustomerSubscriptionUpdated,
		},
		fields: []field{
			{"id", kString},
			{"created", kTime},
			{"application", kRef},
			{"application_fee_percent", kFloat},
			{"automatic_tax", kObject},
			{"billing_cycle_anchor", kTime},
			{"billing_cycle_anchor_config", kObject},
			{"billing_mode", kObject},
			{"billing_schedules", kArray},
			{"billing_thresholds", kObject},
			{"cancel_at", kTime},
			{"cancel_at_period_end", kBool},
			{"canceled_at", kTime},
			{"cancellation_details", kObject},
			{"collection_method", kString},
			{"currency", kString},
			{"customer", kRef},
			{"customer_account", kString},
			{"days_until_due", kInt},
			{"default_payment_method", kRef},
			{"default_source", kRef},
			{"default_tax_rates", kArray},
			{"description", kString},
			{"discounts", kArray},
			{"ended_at", kTime},
			{"invoice_settings", kObject},
			{"items", kObject},
			{"latest_invoice", kRef},
			{"livemode", kBool},
			{"managed_payments", kObject},
			{"metadata", kObject},
			{"next_pending_invoice_item_invoice", kTime},
			{"on_behalf_of", kRef},
			{"pause_collection", kObject},
			{"payment_settings", kObject},
			{"pending_invoice_item_interval", kObject},
			{"pending_setup_intent", kRef},
			{"pending_update", kObject},
			{"presentment_details", kObject},
			{"schedule", kRef},
			{"start_date", kTime},
			{"status", kString},
			{"test_clock", kRef},
			{"transfer_data", kObject},
			{"trial_end", kTime},
			{"trial_settings", kObject},
			{"trial_start", kTime},
		},
	},
}
