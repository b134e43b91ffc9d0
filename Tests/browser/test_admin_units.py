"""The admin console's pure helpers (js/admin-format.js and the tab modules' exports), run in
Chromium on a blank page of the static site: query strings of the admin API, numbers,
sizes, durations, dates in a time zone, the chart's scales and labels, and the chart's SVG.

The console against a real relay is tested elsewhere; these need no relay."""

import json
import re


def run(page, body):
    """Evaluates `body` (an async function's body with `f` = admin-format.js) in the page."""
    return page.evaluate(
        "async () => { const f = await import('/js/admin-format.js');\n" + body + "\n}"
    )


def test_usage_query_keeps_the_apis_order_leaves_out_empty_filters_and_encodes(module_page):
    result = run(
        module_page,
        """
        const filters = { reason: 'open', engineer: ' kim minji ', from: '2026-10-01', to: '2026-10-31',
                          tz: 'Asia/Seoul', host: '', mode: null, extra: 'ignored' };
        return {
            plain: f.usageQuery(filters),
            paged: f.usageQuery(filters, { after: 'a+b/c==', limit: 100 }),
            exported: f.usageQuery(filters, { format: 'xlsx' }),
            offset: f.usageQuery({ from: '2026-11-01T09:30', to: '2026-11-02', tz: '+09:00' }),
            none: f.usageQuery({}),
            nothingMore: f.usageQuery({ from: '2026-10-01', to: '2026-10-31' }, { after: null }),
            audit: f.auditQuery({ from: '2026-10-01', to: '2026-10-31', tz: 'UTC', actor: 'console:alice', action: 'engineer_remove' }, { after: 'x' }),
            access: f.accessQuery({ from: '2026-10-01', to: '2026-10-31', tz: 'UTC', event: 'web_password', outcome: 'rejected', subject: 'no' }),
        };
        """,
    )
    assert result["plain"] == "from=2026-10-01&to=2026-10-31&tz=Asia%2FSeoul&engineer=kim%20minji&reason=open"
    assert result["paged"] == result["plain"] + "&after=a%2Bb%2Fc%3D%3D&limit=100"
    assert result["exported"] == result["plain"] + "&format=xlsx"
    assert result["offset"] == "from=2026-11-01T09%3A30&to=2026-11-02&tz=%2B09%3A00"
    assert result["none"] == ""
    assert result["nothingMore"] == "from=2026-10-01&to=2026-10-31"
    assert result["audit"] == "from=2026-10-01&to=2026-10-31&tz=UTC&actor=console%3Aalice&action=engineer_remove&after=x"
    assert result["access"] == "from=2026-10-01&to=2026-10-31&tz=UTC&event=web_password&outcome=rejected"


def test_the_query_round_trips_through_url_search_params(module_page):
    # What a server's query parser reads back is what the person typed (trimmed).
    result = run(
        module_page,
        """
        const filters = { from: '2026-10-01', to: '2026-10-31', tz: 'America/Argentina/Buenos_Aires',
                          engineer: 'O\\'Brien & Sons=1?#', host: 'ho-ABC 123', mode: 'attended', reason: 'peer_left' };
        return Object.fromEntries(new URLSearchParams(f.usageQuery(filters, { format: 'csv' })));
        """,
    )
    assert result == {
        "from": "2026-10-01",
        "to": "2026-10-31",
        "tz": "America/Argentina/Buenos_Aires",
        "engineer": "O'Brien & Sons=1?#",
        "host": "ho-ABC 123",
        "mode": "attended",
        "reason": "peer_left",
        "format": "csv",
    }


def test_bytes_hours_durations_and_counts(module_page):
    result = run(
        module_page,
        """
        const kb = 1024, mb = kb * 1024, gb = mb * 1024;
        return {
            bytes: [0, -5, null, 'x', 1, 512, 1023, 1024, 1536, 10 * kb, 12.4 * kb, 1023.97 * kb, 5 * mb, 1.25 * gb, 3 * gb * 1024, 2 ** 60]
                .map((n) => f.formatBytes(n, 'en-US')),
            hours: [0, 1800, 3600, 5400, 456789, 3600 * 1234.56, 3600 * 12345.6, -10, null].map((s) => f.hoursLabel(s, 'en-US')),
            durations: [0, 0.4, 42, 60, 303, 3600, 7800, 86400, 172800, 183600, null].map(f.durationLabel),
            numbers: [0, 1234, 1234567, null, 'x'].map((n) => f.formatNumber(n, 'en-US')),
            german: [f.formatNumber(1234567, 'de-DE'), f.formatBytes(1.5 * kb, 'de-DE'), f.hoursLabel(5400, 'de-DE')],
            plural: [f.plural(1, 'session', 'sessions', 'en-US'), f.plural(0, 'day', 'days', 'en-US'), f.plural(2500, 'day', 'days', 'en-US')],
        };
        """,
    )
    assert result["bytes"] == [
        "0 B", "0 B", "0 B", "0 B", "1 B", "512 B", "1,023 B", "1 KB", "1.5 KB", "10 KB", "12 KB",
        "1 MB", "5 MB", "1.3 GB", "3 TB", "1,024 PB",
    ]
    assert result["hours"] == ["0 h", "0.5 h", "1 h", "1.5 h", "126.9 h", "1,235 h", "12,346 h", "0 h", "0 h"]
    assert result["durations"] == ["0 s", "0 s", "42 s", "1 min", "5 min 3 s", "1 h", "2 h 10 min", "24 h", "2 d", "2 d 3 h", "0 s"]
    assert result["numbers"] == ["0", "1,234", "1,234,567", "0", "0"]
    assert result["german"] == ["1.234.567", "1,5 KB", "1,5 h"]
    assert result["plural"] == ["1 session", "0 days", "2,500 days"]


def test_the_previous_month_is_the_calendar_month_before_today_in_the_zone(module_page):
    result = run(
        module_page,
        """
        const at = (iso) => Date.parse(iso);
        return {
            // 1 Jan 00:30 in Seoul is still 31 Dec in UTC: each zone has its own "previous month".
            seoulNewYear: f.previousMonth(at('2026-12-31T15:30:00Z'), 'Asia/Seoul'),
            utcNewYear: f.previousMonth(at('2026-12-31T15:30:00Z'), 'UTC'),
            march: f.previousMonth(at('2028-03-15T12:00:00Z'), 'UTC'),
            leap: f.previousMonth(at('2028-03-01T00:00:00Z'), 'Europe/Berlin'),
            notLeap: f.previousMonth(at('2027-03-10T00:00:00Z'), 'America/New_York'),
            today: f.dayIn(at('2026-11-03T23:30:00Z'), 'Asia/Seoul'),
            todayNY: f.dayIn(at('2026-11-03T03:30:00Z'), 'America/New_York'),
            last30: f.lastDays(at('2026-03-05T12:00:00Z'), 'UTC', 30),
            days: [f.daysBetween('2026-10-01', '2026-10-31'), f.daysBetween('2026-10-05', '2026-10-05'), f.daysBetween('2026-10-05', '2026-10-04'),
                   f.daysBetween('2026-03-28', '2026-03-30')],
            add: [f.addDays('2026-12-31', 1), f.addDays('2026-03-01', -1), f.addDays('nope', 1)],
            valid: ['2026-02-28', '2026-02-29', '2028-02-29', '2026-13-01', '26-01-01', '', null].map(f.validDay),
        };
        """,
    )
    assert result["seoulNewYear"] == {"from": "2026-12-01", "to": "2026-12-31"}
    assert result["utcNewYear"] == {"from": "2026-11-01", "to": "2026-11-30"}
    assert result["march"] == {"from": "2028-02-01", "to": "2028-02-29"}
    assert result["leap"] == {"from": "2028-02-01", "to": "2028-02-29"}
    assert result["notLeap"] == {"from": "2027-02-01", "to": "2027-02-28"}
    assert result["today"] == "2026-11-04"
    assert result["todayNY"] == "2026-11-02"
    assert result["last30"] == {"from": "2026-02-04", "to": "2026-03-05"}
    assert result["days"] == [31, 1, 0, 3]
    assert result["add"] == ["2027-01-01", "2026-02-28", ""]
    assert result["valid"] == [True, False, True, False, False, False, False]


def test_time_zones_and_dates_in_a_zone(module_page):
    result = run(
        module_page,
        """
        return {
            valid: ['UTC', 'Asia/Seoul', 'Europe/Berlin', 'Mars/Olympus', '', null, '  '].map(f.validTimeZone),
            defaults: [f.defaultTimeZone('Asia/Seoul', 'Europe/Berlin'), f.defaultTimeZone(null, 'Europe/Berlin'),
                       f.defaultTimeZone('Nowhere/City', 'Europe/Berlin'), f.defaultTimeZone(undefined, 'bad')],
            known: (() => { const zones = f.knownTimeZones(); return [zones[0], zones.includes('Asia/Seoul'), zones.filter((z) => z === 'UTC').length]; })(),
            seoul: f.formatDateTime('2026-11-03T09:12:00Z', 'Asia/Seoul', 'en-GB'),
            utc: f.formatDateTime('2026-11-03T09:12:00Z', 'UTC', 'en-GB'),
            missing: [f.formatDateTime(null, 'UTC'), f.formatDateTime('', 'UTC'), f.formatDateTime('soon', 'UTC')],
            // A day is a calendar day whatever the zone of the browser running the page.
            day: [f.dayWords('2026-11-03', 'en-GB'), f.dayShort('2026-11-03', 'en-GB'), f.dayWords('bad', 'en-GB')],
            range: [f.rangeWords('2026-10-01', '2026-10-31', 'en-GB'), f.rangeWords('2026-10-05', '2026-10-05', 'en-GB')],
        };
        """,
    )
    assert result["valid"] == [True, True, True, False, False, False, False]
    assert result["defaults"] == ["Asia/Seoul", "Europe/Berlin", "Europe/Berlin", "UTC"]
    assert result["known"] == ["UTC", True, 1]
    assert result["seoul"] == "3 Nov 2026, 18:12"
    assert result["utc"] == "3 Nov 2026, 09:12"
    assert result["missing"] == ["", "", ""]
    # ICU versions differ on the comma after the weekday.
    assert re.fullmatch(r"Tue,? 3 Nov 2026", result["day"][0]), result["day"]
    assert result["day"][1:] == ["3 Nov", "bad"]
    assert result["range"] == ["1 Oct 2026 – 31 Oct 2026", "5 Oct 2026"]


def test_nice_scales_for_the_charts_axes(module_page):
    result = run(
        module_page,
        """
        return {
            hours: [0, -3, 0.4, 1, 7.3, 10, 24.2, 123, 999, 1e6].map((max) => f.niceScale(max)),
            counts: [0, 1, 3, 5, 7, 41, 230].map((max) => f.niceScale(max, { integer: true })),
            // A second axis with exactly as many steps as the first (shared grid lines).
            aligned: [[0, 4], [3, 4], [17, 4], [17, 3], [1, 1]].map(([max, count]) => f.niceScale(max, { count, integer: true })),
            steps: [0.03, 0.25, 0.3, 1.825, 2.5, 3, 7, 40, 0, -1, NaN].map((raw) => f.niceStep(raw)),
            integerSteps: [0.1, 0.6, 1.5, 2.2, 22, 230].map((raw) => f.niceStep(raw, true)),
        };
        """,
    )
    ticks = [scale["ticks"] for scale in result["hours"]]
    assert ticks == [
        [0, 0.25, 0.5, 0.75, 1],
        [0, 0.25, 0.5, 0.75, 1],
        [0, 0.1, 0.2, 0.3, 0.4],
        [0, 0.25, 0.5, 0.75, 1],
        [0, 2, 4, 6, 8],
        [0, 2.5, 5, 7.5, 10],
        [0, 10, 20, 30],
        [0, 50, 100, 150],
        [0, 250, 500, 750, 1000],
        [0, 250000, 500000, 750000, 1000000],
    ]
    for scale, maximum in zip(result["hours"], [0, -3, 0.4, 1, 7.3, 10, 24.2, 123, 999, 1e6]):
        assert scale["max"] == scale["ticks"][-1] >= maximum
        assert scale["step"] == scale["ticks"][1]
        assert 2 <= len(scale["ticks"]) <= 5
    assert [scale["ticks"] for scale in result["counts"]] == [
        [0, 1],
        [0, 1],
        [0, 1, 2, 3],
        [0, 2, 4, 6],
        [0, 2, 4, 6, 8],
        [0, 20, 40, 60],
        [0, 100, 200, 300],
    ]
    assert [scale["ticks"] for scale in result["aligned"]] == [
        [0, 1, 2, 3, 4],
        [0, 1, 2, 3, 4],
        [0, 5, 10, 15, 20],
        [0, 10, 20, 30],
        [0, 1],
    ]
    assert result["steps"] == [0.05, 0.25, 0.5, 2, 2.5, 5, 10, 50, 1, 1, 1]
    assert result["integerSteps"] == [1, 1, 2, 5, 25, 250]


def test_day_labels_stay_within_the_room_and_start_at_the_first_day(module_page):
    result = run(
        module_page,
        """
        const days = (n, start = '2026-10-01') => Array.from({ length: n }, (_, i) => f.addDays(start, i));
        return {
            week: f.dayLabels(days(7), 10, 'en-GB'),
            month: f.dayLabels(days(31), 8, 'en-GB').map((label) => label.index),
            tight: f.dayLabels(days(31), 6, 'en-GB').map((label) => label.index),
            year: f.dayLabels(days(365, '2026-01-01'), 12, 'en-GB').length,
            one: f.dayLabels(days(1), 0, 'en-GB'),
            none: f.dayLabels([], 5),
            monthText: f.dayLabels(days(31), 8, 'en-GB').map((label) => label.text),
        };
        """,
    )
    assert [label["index"] for label in result["week"]] == list(range(7))
    assert result["week"][0]["text"] == "1 Oct"
    assert result["month"] == [0, 4, 8, 12, 16, 20, 24, 28]
    # Every 6th day would be 6 labels; a week apart reads better.
    assert result["tight"] == [0, 7, 14, 21, 28]
    assert result["year"] <= 12
    assert result["one"] == [{"index": 0, "text": "1 Oct"}]
    assert result["none"] == []
    assert result["monthText"][:3] == ["1 Oct", "5 Oct", "9 Oct"]


def test_words_for_end_reasons_alert_kinds_groups_and_search(module_page):
    result = run(
        module_page,
        """
        const host = { name: 'Front desk PC', id: 'ho-abc', group: 'Sales', fingerprint: 'SHA256:xyz' };
        return {
            reasons: [null, 'normal', 'peer_left', 'declined', 'unknown_42'].map(f.endReasonWords),
            kinds: ['new_sign_in_network', 'host_removed', 'toString', 'later_kind'].map(f.alertKindWords),
            groups: [f.parseGroups('Sales, Support , sales,,  Front desk '), f.parseGroups(''), f.parseGroups(null)],
            search: ['', 'front pc', 'SALES', 'xyz', 'front nothing'].map((q) => f.matchesQuery(host, q, ['name', 'id', 'group', 'fingerprint'])),
        };
        """,
    )
    assert result["reasons"] == ["Still running", "Ended normally", "The other side left", "Declined by the customer", "unknown_42"]
    assert result["kinds"] == ["Sign-in from a new network", "Host removed", "toString", "later_kind"]
    assert result["groups"] == [["Sales", "Support", "Front desk"], [], []]
    assert result["search"] == [True, True, True, True, False]


def test_the_tabs_modules_helpers(module_page):
    # Importing admin.js on a page without the console's markup starts nothing.
    result = module_page.evaluate(
        """async () => {
            const admin = await import('/js/admin.js');
            const usage = await import('/js/admin-usage.js');
            const hosts = await import('/js/admin-hosts.js');
            const engineers = await import('/js/admin-engineers.js');
            const retention = await import('/js/admin-retention.js');
            const alerts = await import('/js/admin-alerts.js');
            const list = [{ id: 'a', name: 'Front', group: 'Sales' }, { id: 'b', name: 'Back', group: '' }, { id: 'c', name: 'Side', group: 'Support' }];
            const people = [{ id: '1', login: 'zed', role: 'manager' }, { id: '2', login: 'amy', role: 'manager' }, { id: '3', login: 'bob', role: 'engineer' }];
            return {
                reexported: typeof admin.usageQuery === 'function' && typeof admin.niceScale === 'function',
                allowed: [admin.allowedSections(['relay', 'usage', 'nonsense', 'hosts']), admin.allowedSections(undefined)],
                hash: [admin.sectionForHash('#hosts', ['usage', 'hosts']), admin.sectionForHash('#HOSTS', ['usage', 'hosts']),
                       admin.sectionForHash('#relay', ['usage', 'hosts']), admin.sectionForHash('', ['relay']), admin.sectionForHash('#x', [])],
                defaults: usage.defaultUsageFilters(Date.parse('2026-11-15T12:00:00Z'), 'UTC'),
                problems: [
                    usage.usageFilterProblem({ from: '', to: '2026-10-31', tz: 'UTC' }),
                    usage.usageFilterProblem({ from: '2026-11-01', to: '2026-10-31', tz: 'UTC' }),
                    usage.usageFilterProblem({ from: '2026-10-01', to: '2026-10-31', tz: 'Mars/Base' }),
                    usage.usageFilterProblem({ from: '2026-10-01', to: '2026-10-31', tz: 'Asia/Seoul' }),
                ],
                visible: [hosts.visibleHosts(list, '*', ''), hosts.visibleHosts(list, '', ''), hosts.visibleHosts(list, 'Sales', 'front'), hosts.visibleHosts(list, '*', 'side')]
                    .map((found) => found.map((host) => host.id)),
                groups: hosts.groupNames(['Support', 'Legal'], list),
                status: [{ disabled: true }, { password: false, twoFactor: false }, { password: true, twoFactor: true }, {}].map((p) => engineers.engineerStatus(p).words),
                managers: engineers.managerChoices(people, '2').map((person) => person.login),
                purge: [
                    retention.purgeSentence({ sessions: 12, accessEvents: 340, heldSessions: 5, heldAccessEvents: 20 }, true, '3 Nov 2026, 14:00', 'en-US'),
                    retention.purgeSentence({ sessions: 1, accessEvents: 1, heldSessions: 0 }, false, '', 'en-US'),
                    retention.purgeSentence({ sessions: 0, accessEvents: 0, heldSessions: 0 }, false, '', 'en-US'),
                ],
                delivery: [alerts.deliveryWords(null, ''), alerts.deliveryWords({ status: 200 }, '3 Nov'), alerts.deliveryWords({ status: null, error: 'timed out' }, ''),
                           alerts.deliveryWords({ status: null, error: null }, '')],
                kept: [retention.keptFor(12, undefined, 'en-US'), retention.keptFor(1, 365, 'en-US'), retention.keptFor(undefined, 90, 'en-US'), retention.keptFor(null, null)],
                urls: ['https://hooks.example.com/x', 'http://hooks.example.com/x', 'hooks.example.com'].map(alerts.webhookURLProblem),
            };
        }"""
    )
    assert result["reexported"] is True
    assert result["allowed"] == [["usage", "hosts", "relay"], []]
    assert result["hash"] == ["hosts", "hosts", "usage", "relay", None]
    assert result["defaults"] == {"from": "2026-10-01", "to": "2026-10-31", "tz": "UTC", "engineer": "", "host": "", "mode": "", "reason": ""}
    problems = result["problems"]
    assert problems[0]["field"] == "usage-from" and "first day" in problems[0]["text"]
    assert problems[1]["field"] == "usage-from" and "Swap" in problems[1]["text"]
    assert problems[2]["field"] == "usage-tz" and "Mars/Base" in problems[2]["text"]
    assert problems[3] is None
    assert result["visible"] == [["a", "b", "c"], ["b"], ["a"], ["c"]]
    assert result["groups"] == ["Legal", "Sales", "Support"]
    assert result["status"] == ["disabled", "invited", "active", "active"]
    assert result["managers"] == ["zed"]
    assert result["purge"] == [
        "The next hourly purge (at 3 Nov 2026, 14:00) would destroy 12 sessions and 340 access events (5 sessions and 20 access events kept by the hold).",
        "The next hourly purge would destroy 1 session and 1 access event.",
        "The next hourly purge would destroy nothing: no record is older than the retention periods.",
    ]
    assert result["delivery"] == ["Nothing was delivered yet.", "Last delivery 3 Nov: HTTP 200.", "Last delivery failed: timed out", "Last delivery: no answer."]
    assert result["kept"] == ["12 months", "1 month", "90 days", "–"]
    assert result["urls"][0] is None
    assert "https://" in result["urls"][1] and "https://" in result["urls"][2]


def test_the_day_chart_draws_a_bar_and_a_tooltip_per_day_within_its_box(module_page):
    days = [
        {"day": "2026-10-01", "sessions": 3, "seconds": 5400},
        {"day": "2026-10-02", "sessions": 0, "seconds": 0},
        {"day": "2026-10-03", "sessions": 12, "seconds": 36000},
        {"day": "2026-10-04", "sessions": 1, "seconds": 4},
    ]
    result = module_page.evaluate(
        """async (days) => {
            const chart = await import('/js/admin-chart.js');
            const box = document.createElement('div');
            box.style.width = '600px';
            document.body.append(box);
            const svg = chart.drawDayChart(box, days, { labelledBy: 'summary', locale: 'en-GB' });
            const number = (node, name) => Number(node.getAttribute(name));
            const bars = [...svg.querySelectorAll('.bar')];
            const hits = [...svg.querySelectorAll('.hit')];
            const inside = [...svg.querySelectorAll('rect, circle, line, text')].every((node) => {
                const box = node.getBBox();
                return box.x >= -0.5 && box.y >= -0.5 && box.x + box.width <= 600.5 && box.y + box.height <= number(svg, 'height') + 0.5;
            });
            const points = svg.querySelector('.sessions-line').getAttribute('points').split(' ').map((p) => p.split(',').map(Number));
            const result = {
                width: number(svg, 'width'),
                role: svg.getAttribute('role'),
                labelledBy: svg.getAttribute('aria-labelledby'),
                titles: [...svg.querySelectorAll('.day > title')].map((title) => title.textContent),
                bars: bars.length,
                hits: hits.length,
                heights: bars.map((bar) => number(bar, 'height')),
                inside,
                pointYs: points.map(([, y]) => y),
                leftTicks: [...svg.querySelectorAll('.hours-tick')].map((t) => t.textContent),
                rightTicks: [...svg.querySelectorAll('.sessions-tick')].map((t) => t.textContent),
                xLabels: [...svg.querySelectorAll('.x-axis text')].map((t) => t.textContent),
                summary: chart.chartSummary(days, 'en-GB'),
                empty: chart.chartSummary(days.map((d) => ({ ...d, sessions: 0, seconds: 0 })), 'en-GB'),
                share: [0, 0.5, 2].map((fraction) => [...chart.shareBar(fraction).querySelectorAll('rect')].map((r) => r.getAttribute('width'))),
            };
            // Drawn again at another width: the old chart is replaced, not added to.
            box.style.width = '320px';
            chart.drawDayChart(box, days, {});
            result.redrawn = [box.querySelectorAll('svg').length, number(box.querySelector('svg'), 'width')];
            chart.drawDayChart(box, [], {});
            result.nothing = box.querySelectorAll('.bar, .sessions-line').length;
            return result;
        }""",
        days,
    )
    assert result["width"] == 600
    assert result["role"] == "img" and result["labelledBy"] == "summary"
    assert [title.replace(",", "", 1) for title in result["titles"]] == [
        "Thu 1 Oct 2026: 3 sessions, 1 h 30 min",
        "Fri 2 Oct 2026: 0 sessions, 0 s",
        "Sat 3 Oct 2026: 12 sessions, 10 h",
        "Sun 4 Oct 2026: 1 session, 4 s",
    ]
    assert result["hits"] == 4
    assert result["bars"] == 3  # no bar for a day without time
    tall_1, tall_3, sliver = result["heights"]
    assert abs(tall_3 / tall_1 - 10 / 1.5) < 0.05, result["heights"]
    assert sliver >= 1
    assert result["inside"], "a part of the chart is drawn outside its box"
    # More sessions is higher up (a smaller y); the day without sessions sits on the axis.
    ys = result["pointYs"]
    assert ys[2] < ys[0] < ys[3] < ys[1]
    assert result["leftTicks"][0] == "0" and result["leftTicks"][-1].endswith(" h")
    assert len(result["leftTicks"]) == len(result["rightTicks"])
    assert result["rightTicks"][-1] in {"12", "15", "16", "20"}
    assert result["xLabels"] == ["1 Oct", "2 Oct", "3 Oct", "4 Oct"]
    assert re.fullmatch(r"Sessions on 3 of 4 days\. The busiest day was Sat,? 3 Oct 2026 with 10 h in 12 sessions\.", result["summary"])
    assert result["empty"] == "No sessions on any of the 4 days."
    assert result["share"] == [["100%"], ["100%", "50%"], ["100%", "100%"]]
    assert result["redrawn"] == [1, 320]
    assert result["nothing"] == 0


def test_no_admin_module_writes_html_or_style_attributes():
    """Server text goes in as text: no innerHTML, insertAdjacentHTML, document.write, eval
    or style attributes in the admin console's files (the CSP would refuse the last two)."""
    import pathlib

    static = pathlib.Path(__file__).resolve().parents[2] / "Sources" / "RelayServer" / "Web" / "Static"
    files = sorted((static / "js").glob("admin*.js")) + [static / "admin.html"]
    assert len(files) >= 5
    forbidden = re.compile(r"innerHTML|outerHTML|insertAdjacentHTML|document\.write|\beval\(|new Function|setAttribute\(\s*['\"]style|style=|\son[a-z]+=")
    for path in files:
        text = path.read_text(encoding="utf-8")
        found = forbidden.findall(text)
        assert not found, f"{path.name}: {found}"
    page = (static / "admin.html").read_text(encoding="utf-8")
    assert json.dumps("<style") not in page and "<style" not in page


def test_a_paged_list_asks_for_each_page_once_and_drops_answers_to_older_filters(module_page):
    result = module_page.evaluate(
        """async () => {
            const ui = await import('/js/admin-ui.js');
            const { ApiError } = await import('/js/api.js');
            const button = document.createElement('button');
            document.body.append(button);
            const alert = document.createElement('div');
            const asked = [];
            const shown = [];
            let filter = 'a';
            let hold = null;
            const load = async (after) => {
                asked.push(`${filter}:${after}`);
                if (filter === 'slow') await new Promise((resolve) => { hold = resolve; });
                const start = after === null ? 0 : Number(after);
                const rows = [start, start + 1].filter((n) => n < 5).map((n) => `${filter}${n}`);
                return { rows, next: start + 2 < 5 ? String(start + 2) : null };
            };
            const list = new ui.PagedList({
                load, button, what: 'rows', messages: new ui.Messages(alert, null),
                render: (rows, { append }) => shown.push([append, ...rows]),
            });
            await list.reset();
            const firstHidden = button.hidden;
            await list.more();
            await list.more();
            const lastHidden = button.hidden;
            await list.more();  // nothing more: not asked again
            const all = [...list.rows];

            // A slow answer for older filters arrives after the newer filters' answer: dropped.
            filter = 'slow';
            const old = list.reset();
            filter = 'new';
            await list.reset();
            hold();
            await old;

            // A failed first page: the section's alert says so.
            const failing = new ui.PagedList({
                load: async () => { throw new ApiError('The relay said no.', 500); },
                button: document.createElement('button'), what: 'sessions', messages: new ui.Messages(alert, null),
                render: (rows, options) => shown.push(['failed', options.failed]),
            });
            await failing.reset();
            return { asked, shown, firstHidden, lastHidden, all, rows: list.rows, alert: alert.textContent };
        }"""
    )
    assert result["asked"] == ["a:null", "a:2", "a:4", "slow:null", "new:null"]
    assert result["firstHidden"] is False and result["lastHidden"] is True
    assert result["all"] == ["a0", "a1", "a2", "a3", "a4"]
    assert result["shown"] == [
        [False, "a0", "a1"],
        [True, "a2", "a3"],
        [True, "a4"],
        [False, "new0", "new1"],
        ["failed", True],
    ]
    assert result["rows"] == ["new0", "new1"]
    assert result["alert"] == "The sessions could not be loaded: The relay said no."


def test_elements_take_server_text_as_text_and_export_links_carry_the_filters(module_page):
    result = module_page.evaluate(
        """async () => {
            const ui = await import('/js/admin-ui.js');
            const f = await import('/js/admin-format.js');
            window.__xss = 0;
            const markup = '<img src=x onerror="window.__xss=1"><b>bold</b>';
            const row = ui.el('tr', { children: [ui.cell(markup, 'name'), ui.cell(ui.badge(markup, 'online'))], attrs: { 'data-id': markup } });
            document.body.append(row);
            const box = document.createElement('div');
            ui.exportLinks(box, '/api/admin/usage/export', f.usageQuery({ from: '2026-10-01', to: '2026-10-31', tz: 'UTC', engineer: 'a&b' }), f.USAGE_EXPORT_FORMATS, 'the sessions');
            const empty = document.createElement('div');
            ui.exportLinks(empty, '/api/admin/alerts/export', '', f.LOG_EXPORT_FORMATS, 'the alerts');
            await new Promise((resolve) => setTimeout(resolve, 200));
            return {
                elements: row.querySelectorAll('img, b').length,
                texts: [...row.querySelectorAll('td')].map((td) => td.textContent),
                attribute: row.getAttribute('data-id'),
                xss: window.__xss,
                links: [...box.querySelectorAll('a')].map((a) => [a.textContent, a.getAttribute('href'), a.hasAttribute('download'), a.getAttribute('aria-label')]),
                bare: [...empty.querySelectorAll('a')].map((a) => a.getAttribute('href')),
            };
        }"""
    )
    assert result["elements"] == 0 and result["xss"] == 0
    assert result["texts"] == ['<img src=x onerror="window.__xss=1"><b>bold</b>'] * 2
    assert result["attribute"] == '<img src=x onerror="window.__xss=1"><b>bold</b>'
    query = "from=2026-10-01&to=2026-10-31&tz=UTC&engineer=a%26b"
    assert result["links"] == [
        ["CSV", f"/api/admin/usage/export?{query}&format=csv", True, "Download the sessions as CSV"],
        ["JSON Lines", f"/api/admin/usage/export?{query}&format=jsonl", True, "Download the sessions as JSON Lines"],
        ["Excel (XLSX)", f"/api/admin/usage/export?{query}&format=xlsx", True, "Download the sessions as Excel (XLSX)"],
    ]
    assert result["bare"] == ["/api/admin/alerts/export?format=csv", "/api/admin/alerts/export?format=jsonl"]
