"""The HTML of the eval's loopback site (``eval/site.py`` serves it).

Plain pages with real forms (posts go back to the site, which records
them), large readable type so text recognition reads them on a desktop too,
and labels tied to their fields. Every page is a function of the attempt's
state only.
"""

from __future__ import annotations

from html import escape

STYLE = """body{font-family:'DejaVu Sans',sans-serif;font-size:20px;margin:40px;color:#111}
input,button,textarea{font:inherit;padding:6px 8px} input[type=text],input[type=email],
input[type=password],input[type=search],textarea{width:360px} .row{margin-bottom:20px}
label{display:block;margin-bottom:4px} table{border-collapse:collapse}
td,th{border:1px solid #999;padding:6px 12px;text-align:left} .note{color:#333}"""


def page(title: str, body: str) -> str:
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{escape(title)}</title>"
            f"<style>{STYLE}</style></head><body><h1>{escape(title)}</h1>{body}</body></html>")


def field(name: str, label: str, kind: str = "text", value: str = "") -> str:
    return (f"<div class='row'><label for='{name}'>{escape(label)}</label>"
            f"<input id='{name}' name='{name}' type='{kind}' value='{escape(value)}'></div>")


def hidden(fields: dict[str, str]) -> str:
    return "".join(f"<input type='hidden' name='{escape(k)}' value='{escape(v)}'>"
                   for k, v in fields.items())


def index(links: list[tuple[str, str]]) -> str:
    items = "".join(f"<li><a href='{href}'>{escape(text)}</a></li>" for href, text in links)
    return page("Eval site", f"<ul>{items}</ul>")


# -- a form in two pages -------------------------------------------------------------------

def signup_1() -> str:
    return page("Create an account (step 1 of 2)",
                "<form method='post' action='signup/2'>"
                + field("full_name", "Full name") + field("email", "Email", "email")
                + "<button type='submit'>Next</button></form>")


def signup_2(carried: dict[str, str]) -> str:
    return page("Create an account (step 2 of 2)",
                "<form method='post' action='done'>" + hidden(carried)
                + field("city", "City") + field("postcode", "Postcode")
                + "<button type='submit'>Create account</button></form>")


def signup_done(name: str) -> str:
    return page("Account created", f"<p>Thanks, {escape(name)}. Your account is ready.</p>")


# -- a login with a one-time code ----------------------------------------------------------

def login(error: str = "") -> str:
    note = f"<p class='note'>{escape(error)}</p>" if error else ""
    return page("Sign in", note + "<form method='post' action='login'>"
                + field("username", "Username") + field("password", "Password", "password")
                + "<button type='submit'>Sign in</button></form>")


def otp(error: str = "") -> str:
    note = f"<p class='note'>{escape(error)}</p>" if error else ""
    return page("Two-step verification",
                "<p>We sent a one-time code to your inbox (<a href='inbox'>open the inbox"
                "</a>).</p>" + note + "<form method='post' action='otp'>"
                + field("code", "One-time code")
                + "<button type='submit'>Verify</button></form>")


def inbox(code: str | None) -> str:
    if code is None:
        return page("Inbox", "<p>No messages.</p>")
    return page("Inbox", f"<p>From: Acme security</p><p>Your one-time code is "
                         f"<b id='code'>{code}</b>. It works once.</p>")


def welcome(user: str) -> str:
    return page("Dashboard", f"<p>Welcome, {escape(user)}. You are signed in.</p>")


# -- a table over two pages ----------------------------------------------------------------

ORDERS: tuple[tuple[str, str, str, str], ...] = (
    ("1041", "Ada Lovelace", "3 notebooks", "pending"),
    ("1042", "Alan Turing", "1 chess set", "pending"),
    ("1043", "Katherine Johnson", "2 slide rules", "pending"),
    ("1044", "Edsger Dijkstra", "1 fountain pen", "pending"),
    ("1045", "Barbara Liskov", "4 index cards", "pending"),
    ("1046", "Donald Knuth", "7 bookmarks", "pending"),
    ("1047", "Grace Hopper", "1 nanosecond wire", "pending"),
    ("1048", "John McCarthy", "2 parentheses", "pending"),
)
ORDERS_PER_PAGE = 4


def orders(page_no: int, shipped: set[str]) -> str:
    rows = ORDERS[(page_no - 1) * ORDERS_PER_PAGE: page_no * ORDERS_PER_PAGE]
    body = "<table><tr><th>Order</th><th>Customer</th><th>Items</th><th>Status</th><th></th></tr>"
    for number, customer, items, status in rows:
        state = "shipped" if number in shipped else status
        body += (f"<tr><td>{number}</td><td>{customer}</td><td>{items}</td><td>{state}</td>"
                 f"<td><form method='post' action='ship'><input type='hidden' name='order' "
                 f"value='{number}'><button type='submit'>Ship #{number}</button></form>"
                 "</td></tr>")
    body += "</table>"
    pages = (len(ORDERS) + ORDERS_PER_PAGE - 1) // ORDERS_PER_PAGE
    body += f"<p>Page {page_no} of {pages}</p>"
    if page_no > 1:
        body += f"<a href='orders?page={page_no - 1}'>Previous page</a> "
    if page_no < pages:
        body += f"<a href='orders?page={page_no + 1}'>Next page</a>"
    return page("Orders", body)


def shipped(number: str) -> str:
    return page("Orders", f"<p>Order {escape(number)} is marked as shipped.</p>"
                          "<a href='orders'>Back to the orders</a>")


# -- downloads -----------------------------------------------------------------------------

REPORTS = {"q2": "quarter,revenue\nQ2,41200\n", "q3": "quarter,revenue\nQ3,45800\n"}


def reports() -> str:
    links = "".join(f"<li><a href='reports/{name}.csv' download>{name.upper()} report (CSV)"
                    "</a></li>" for name in REPORTS)
    return page("Reports", f"<ul>{links}</ul>")


# -- a form with a checkbox and a text area --------------------------------------------------

def feedback() -> str:
    return page("Feedback", "<form method='post' action='feedback'>"
                "<div class='row'><label for='comments'>Comments</label>"
                "<textarea id='comments' name='comments' rows='3'></textarea></div>"
                "<div class='row'><input type='checkbox' id='newsletter' name='newsletter' "
                "value='yes'><label for='newsletter' style='display:inline'>Subscribe to "
                "the newsletter</label></div><button type='submit'>Send feedback</button>"
                "</form>")


def thanks(what: str) -> str:
    return page("Thank you", f"<p>{escape(what)}</p>")


# -- search, a product, a cart ---------------------------------------------------------------

PRODUCTS = {"lamp-01": "Brass desk lamp", "lamp-02": "Paper floor lamp",
            "mug-01": "Enamel camping mug", "pen-01": "Steel fountain pen"}


def search(query: str) -> str:
    form = ("<form method='get' action='search'><label for='q'>Search products</label>"
            f"<input id='q' name='q' type='search' value='{escape(query)}'>"
            "<button type='submit'>Search</button></form>")
    if not query:
        return page("Shop", form)
    hits = [(sku, name) for sku, name in PRODUCTS.items() if query.lower() in name.lower()]
    items = "".join(f"<li><a href='product/{sku}'>{escape(name)}</a></li>" for sku, name in hits)
    return page("Shop", form + f"<p>{len(hits)} result(s)</p><ul>{items}</ul>")


def product(sku: str) -> str:
    return page(PRODUCTS[sku], f"<p>Item {sku}.</p><form method='post' action='../cart'>"
                               f"<input type='hidden' name='sku' value='{sku}'>"
                               "<button type='submit'>Add to cart</button></form>")


# -- a newsletter form (big, for the desktop's text recognition) -----------------------------

def newsletter() -> str:
    return page("Newsletter", "<form method='post' action='newsletter'>"
                + field("email", "Email address", "email")
                + "<button type='submit' style='font-size:24px'>Subscribe</button></form>")
