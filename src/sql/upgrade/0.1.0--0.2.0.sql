-- Schema changes from 0.1.0 (the first release) to 0.2.0. The generated upgrade script appends
-- CREATE OR REPLACE of the loader and of every plv8 function, so only changes to src/sql objects
-- (tables, types, operators, SQL/plpgsql functions, grants) belong here. The upgrade test fails
-- if "install 0.1.0 + ALTER EXTENSION UPDATE" differs from a fresh 0.2.0 install.
SELECT 1 WHERE false; -- nothing changed yet
