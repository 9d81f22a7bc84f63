"""Master data: locations, products, lots and items (bulk import from CSV/JSON), its routes and the
import file formats reference."""
