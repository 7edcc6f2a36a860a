//! `XmlDecoder`: an XML body as one document, converted as Python's `xmltodict` does (which
//! Airbyte uses): attributes as `@name`, an element's text as its value — or `#text` beside
//! attributes and children —, repeated children as a list, whitespace around text dropped, an
//! empty element as null. A body that is not XML gives an empty document, as in Airbyte.

use quick_xml::events::{BytesStart, Event};
use serde_json::{Map, Value};

/// One open element: its attributes and children so far, and its text.
struct Open {
    name: String,
    item: Map<String, Value>,
    text: String,
}

fn start(e: &BytesStart<'_>) -> Result<Open, String> {
    let name = String::from_utf8_lossy(e.name().as_ref()).into_owned();
    let mut item = Map::new();
    for a in e.attributes() {
        let a = a.map_err(|e| e.to_string())?;
        let key = format!("@{}", String::from_utf8_lossy(a.key.as_ref()));
        let value = a
            .normalized_value(quick_xml::XmlVersion::Implicit1_0)
            .map_err(|e| e.to_string())?;
        item.insert(key, Value::String(value.into_owned()));
    }
    Ok(Open {
        name,
        item,
        text: String::new(),
    })
}

/// xmltodict's `push_data`: a repeated key becomes a list.
fn push(into: &mut Map<String, Value>, key: String, value: Value) {
    match into.get_mut(&key) {
        Some(Value::Array(list)) => list.push(value),
        Some(existing) => {
            let first = existing.take();
            *existing = Value::Array(vec![first, value]);
        }
        None => {
            into.insert(key, value);
        }
    }
}

/// The value of a closed element.
fn close(open: Open) -> (String, Value) {
    let text = open.text.trim();
    let value = if open.item.is_empty() {
        if text.is_empty() {
            Value::Null
        } else {
            Value::String(text.to_string())
        }
    } else {
        let mut item = open.item;
        if !text.is_empty() {
            push(&mut item, "#text".into(), Value::String(text.to_string()));
        }
        Value::Object(item)
    };
    (open.name, value)
}

/// The document of an XML text (`Err` when it is not well-formed).
pub fn to_json(text: &str) -> Result<Value, String> {
    let mut reader = quick_xml::Reader::from_str(text);
    let mut stack: Vec<Open> = Vec::new();
    let mut root = Map::new();
    loop {
        let event = reader.read_event().map_err(|e| e.to_string())?;
        match event {
            Event::Start(e) => stack.push(start(&e)?),
            Event::Empty(e) => {
                let (k, v) = close(start(&e)?);
                match stack.last_mut() {
                    Some(parent) => push(&mut parent.item, k, v),
                    None => push(&mut root, k, v),
                }
            }
            Event::End(_) => {
                let open = stack.pop().ok_or("an end tag without a start tag")?;
                let (k, v) = close(open);
                match stack.last_mut() {
                    Some(parent) => push(&mut parent.item, k, v),
                    None => push(&mut root, k, v),
                }
            }
            Event::Text(t) => {
                if let Some(top) = stack.last_mut() {
                    top.text
                        .push_str(&t.xml10_content().map_err(|e| e.to_string())?);
                }
            }
            Event::CData(t) => {
                if let Some(top) = stack.last_mut() {
                    top.text.push_str(&t.decode().map_err(|e| e.to_string())?);
                }
            }
            Event::GeneralRef(r) => {
                let resolved = match r.resolve_char_ref().map_err(|e| e.to_string())? {
                    Some(c) => c.to_string(),
                    None => {
                        let name = r.decode().map_err(|e| e.to_string())?;
                        match name.as_ref() {
                            "amp" => "&".into(),
                            "lt" => "<".into(),
                            "gt" => ">".into(),
                            "quot" => "\"".into(),
                            "apos" => "'".into(),
                            other => return Err(format!("undefined entity &{other};")),
                        }
                    }
                };
                if let Some(top) = stack.last_mut() {
                    top.text.push_str(&resolved);
                }
            }
            Event::Eof => break,
            Event::Comment(_) | Event::Decl(_) | Event::PI(_) | Event::DocType(_) => {}
        }
    }
    if !stack.is_empty() {
        return Err("the document ends inside an element".into());
    }
    if root.is_empty() {
        return Err("no element found".into());
    }
    Ok(Value::Object(root))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn converts_like_xmltodict() {
        let xml = r#"<?xml version="1.0"?>
<root>
  <location id="123">
    San Francisco
  </location>
  <item id="1" category="books"><name>Book &amp; Title</name><price>10.99</price></item>
  <item id="2"><name><![CDATA[<Gadget>]]></name><empty/><blank></blank></item>
</root>"#;
        assert_eq!(
            to_json(xml).unwrap(),
            json!({"root": {
                "location": {"@id": "123", "#text": "San Francisco"},
                "item": [
                    {"@id": "1", "@category": "books", "name": "Book & Title", "price": "10.99"},
                    {"@id": "2", "name": "<Gadget>", "empty": null, "blank": null}
                ]
            }})
        );
        assert!(to_json("<a><b></a>").is_err());
        assert!(to_json("not xml").is_err());
        assert_eq!(to_json("<a>&#233;</a>").unwrap(), json!({"a": "é"}));
    }
}
