//! The eight input fields, their known categories, and the three labels.

/// Price-sensitivity labels: less affluent (price-driven), mid-market, up-market.
pub const LABELS: [&str; 3] = ["LA", "MM", "UM"];
pub const N_LABELS: usize = LABELS.len();

/// How a field is read and encoded.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum FieldKind {
    /// A non-negative amount, encoded as a standardised `ln(1 + x)`.
    Number,
    /// One of a known set of codes, one-hot encoded; an unseen code encodes as all zeros.
    Category(&'static [&'static str]),
}

impl FieldKind {
    /// Position of `code` among this field's categories; `None` if unseen or not a category.
    pub fn category_index(&self, code: &str) -> Option<usize> {
        match self {
            Self::Category(codes) => codes.iter().position(|c| *c == code),
            Self::Number => None,
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub struct FieldSpec {
    pub name: &'static str,
    pub kind: FieldKind,
    pub description: &'static str,
}

/// Every field is required; the order here is the order of the feature vector.
pub const FIELDS: [FieldSpec; 8] = [
    FieldSpec {
        name: "BASKET_SIZE",
        kind: FieldKind::Category(&["S", "M", "L"]),
        description: "Basket size band: small, medium or large.",
    },
    FieldSpec {
        name: "BASKET_TYPE",
        kind: FieldKind::Category(&["SMALL_SHOP", "TOP_UP", "FULL_SHOP", "MIXED"]),
        description: "Shopping mission of the basket.",
    },
    FieldSpec {
        name: "STORE_REGION",
        kind: FieldKind::Category(&[
            "LONDON",
            "SOUTH_EAST",
            "SOUTH_WEST",
            "MIDLANDS",
            "NORTH_WEST",
            "NORTH_EAST",
            "SCOTLAND",
            "WALES",
        ]),
        description: "Region of the store.",
    },
    FieldSpec {
        name: "STORE_FORMAT",
        kind: FieldKind::Category(&["LS", "MS", "SS", "XLS"]),
        description: "Store format: large, medium, small or extra-large store.",
    },
    FieldSpec { name: "SPEND", kind: FieldKind::Number, description: "Total basket spend in pounds (>= 0)." },
    FieldSpec {
        name: "QUANTITY",
        kind: FieldKind::Number,
        description: "Number of items in the basket (>= 0).",
    },
    FieldSpec {
        name: "PROD_CODE_20",
        kind: FieldKind::Category(&["FOOD", "NON_FOOD", "HOUSEHOLD", "PERSONAL_CARE", "BEVERAGES"]),
        description: "Dominant product department (level 20 of the hierarchy).",
    },
    FieldSpec {
        name: "PROD_CODE_30",
        kind: FieldKind::Category(&["FRESH", "CHILLED", "FROZEN", "AMBIENT", "BAKERY"]),
        description: "Dominant product category (level 30 of the hierarchy).",
    },
];

/// Numeric fields, in field order.
pub const N_NUMERIC: usize = count_numeric();

/// Length of the encoded feature vector: one slot per category, one per number.
pub const N_FEATURES: usize = count_features();

const fn count_numeric() -> usize {
    let mut n = 0;
    let mut i = 0;
    while i < FIELDS.len() {
        if let FieldKind::Number = FIELDS[i].kind {
            n += 1;
        }
        i += 1;
    }
    n
}

const fn count_features() -> usize {
    let mut n = 0;
    let mut i = 0;
    while i < FIELDS.len() {
        n += match FIELDS[i].kind {
            FieldKind::Number => 1,
            FieldKind::Category(codes) => codes.len(),
        };
        i += 1;
    }
    n
}
